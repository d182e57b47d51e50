// The dashboard: live calls, latency charts, the call list and each call's transcript and
// per-turn latency waterfall, all read from the JSON API with the bearer token.
//
// Routes (in the URL's #fragment): "#/" overview, "#/calls?filters" the list, "#/calls/<CallSid>" a call.
"use strict";

(() => {
  const { el, ms, dateTime, duration, token } = Voxline;
  const $ = (id) => document.getElementById(id);
  const PAGE_SIZE = 25;
  const REFRESH_MS = 2000;
  const OUTCOMES = ["in-progress", "completed", "disconnected", "failed", "caller-silent", "max-duration",
    "server-shutdown", "protocol-error"];
  const PATHS = ["streaming", "recording", "softphone"];
  const RANGES = {
    "1h": { label: "Last hour", seconds: 3600, bucket: 300 },
    "24h": { label: "Last 24 hours", seconds: 86400, bucket: 3600 },
    "7d": { label: "Last 7 days", seconds: 7 * 86400, bucket: 6 * 3600 },
  };

  let refreshTimer = null;
  let renderId = 0; // a newer route makes older pending renders drop their results

  class Unauthorized extends Error {}

  // GET an API path; null on 404 (an unknown call, or an endpoint this server does not have).
  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: `Bearer ${token.get()}`, Accept: "application/json" } });
    if (response.status === 401) throw new Unauthorized();
    if (response.status === 404) return null;
    if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
    return response.json();
  }

  // ---- routing ----
  function parseRoute() {
    const [path, query = ""] = location.hash.replace(/^#/, "").split("?");
    const params = new URLSearchParams(query);
    const parts = path.split("/").filter(Boolean);
    if (parts[0] === "calls" && parts[1]) return { name: "call", sid: decodeURIComponent(parts[1]), params };
    if (parts[0] === "calls") return { name: "calls", params };
    return { name: "overview", params };
  }

  async function route() {
    clearTimeout(refreshTimer);
    if (!token.get()) {
      askForToken();
      return;
    }
    showApp();
    const current = parseRoute();
    for (const link of document.querySelectorAll("#nav a[data-route]")) {
      link.classList.toggle("active", link.dataset.route === (current.name === "call" ? "calls" : current.name));
    }
    const id = ++renderId;
    try {
      if (current.name === "call") await renderCall(current.sid, id);
      else if (current.name === "calls") await renderCalls(current.params, id);
      else await renderOverview(current.params, id);
    } catch (error) {
      if (error instanceof Unauthorized) {
        token.clear();
        askForToken("The server refused this token.");
      } else if (id === renderId) {
        $("view").replaceChildren(el("div", { class: "error-box" }, `Could not load: ${error.message}`));
      }
    }
  }

  function show(id, ...nodes) {
    if (id !== renderId) return false;
    $("view").replaceChildren(...nodes);
    return true;
  }

  function refreshLater(id) {
    if (id === renderId) refreshTimer = setTimeout(route, REFRESH_MS);
  }

  // ---- shared pieces ----
  function outcomeBadge(outcome) {
    const kind = { "in-progress": "live", completed: "good", failed: "bad", "protocol-error": "bad" }[outcome] ||
      (outcome ? "warn" : "");
    return el("span", { class: `badge ${kind}` }, outcome || "—");
  }

  function callDuration(call) {
    const end = call.ended_at ?? Date.now() / 1000;
    return duration(end - call.started_at);
  }

  function callsTable(calls, { id = "calls-table", empty = "No calls." } = {}) {
    if (!calls.length) return el("p", { class: "empty" }, empty);
    const rows = calls.map((call) => el("tr", {
      class: "clickable",
      dataset: { call: call.call_sid },
      onclick: () => { location.hash = `#/calls/${encodeURIComponent(call.call_sid)}`; },
    },
    el("td", {}, dateTime(call.started_at)),
    el("td", {}, call.caller || el("span", { class: "muted" }, "unknown")),
    el("td", {}, call.called || "—"),
    el("td", {}, el("span", { class: "badge" }, call.path || "—")),
    el("td", {}, call.agent || "—"),
    el("td", { class: "num" }, callDuration(call)),
    el("td", { class: "num" }, call.turn_count ?? (call.turns ? call.turns.length : "—")),
    el("td", { class: "num" }, ms(call.v2v_p50_ms ?? null)),
    el("td", {}, outcomeBadge(call.outcome))));
    return el("table", { id, class: "calls-table" },
      el("thead", {}, el("tr", {}, ...["Started", "Caller", "Called", "Path", "Agent", "Duration", "Turns", "V2V p50", "Outcome"]
        .map((h, i) => el("th", { class: i >= 5 && i <= 7 ? "num" : "" }, h)))),
      el("tbody", {}, rows));
  }

  function panel(title, aside, ...body) {
    return el("section", { class: "panel" }, el("header", {}, el("h2", {}, title), aside || ""), ...body);
  }

  function card(label, value, unit = "") {
    return el("div", { class: "card" }, el("div", { class: "label" }, label),
      el("div", { class: "value" }, value, unit ? el("small", {}, ` ${unit}`) : ""));
  }

  const round = (value) => (value === null || value === undefined ? "—" : Math.round(value).toLocaleString());

  // ---- overview ----
  async function renderOverview(params, id) {
    const rangeKey = RANGES[params.get("range")] ? params.get("range") : "24h";
    const range = RANGES[rangeKey];
    const until = Date.now() / 1000;
    const since = until - range.seconds;
    const [live, stats, recent] = await Promise.all([
      api("/api/live"),
      api(`/api/stats?since=${since}&until=${until}&bucket_s=${range.bucket}`),
      api(`/api/calls?limit=10&offset=0`),
    ]);
    const liveCalls = live ? live.calls : (recent ? recent.calls.filter((c) => c.outcome === "in-progress") : []);

    const rangeSelect = el("select", { id: "range", onchange: (e) => { location.hash = `#/?range=${e.target.value}`; } },
      Object.entries(RANGES).map(([key, r]) => el("option", { value: key, selected: key === rangeKey }, r.label)));

    const nodes = [
      el("div", { class: "panel-title" }, el("h1", {}, "Overview"),
        el("p", { class: "subtitle" }, "Calls in progress and how fast the agent answers.")),
    ];
    nodes.push(el("div", { class: "grid cards" },
      card("Live calls", el("span", { id: "live-count" }, liveCalls.length)),
      card(`Calls · ${range.label.toLowerCase()}`, stats ? stats.calls.toLocaleString() : "—"),
      card("Turns", stats ? stats.turns.toLocaleString() : "—"),
      card("Voice-to-voice p50", stats ? round(stats.voice_to_voice.p50) : "—", "ms"),
      card("Voice-to-voice p95", stats ? round(stats.voice_to_voice.p95) : "—", "ms")));

    nodes.push(panel("Live calls", el("span", { class: "badge live" }, "live"),
      el("div", { id: "live-calls" }, liveTable(liveCalls))));

    if (stats) {
      nodes.push(el("div", { class: "grid", style: "grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));" },
        panel("Voice-to-voice latency", rangeSelect, latencyChart(stats)),
        panel("Calls", "", callsChart(stats))));
      nodes.push(panel("Latency by stage", el("span", { class: "muted" }, "ms after the caller's end of speech"), stagesTable(stats)));
    } else {
      nodes.push(panel("Latency over time", "", el("p", { class: "empty" }, "This server does not provide /api/stats.")));
    }

    nodes.push(panel("Recent calls", el("a", { href: "#/calls" }, "All calls →"),
      callsTable(recent ? recent.calls : [], { id: "recent-calls-table" })));
    if (show(id, ...nodes)) pollLive(id, Boolean(live));
  }

  function liveTable(calls) {
    return callsTable(calls, { id: "live-calls-table", empty: "No call in progress. Place one from the softphone." });
  }

  // Only the live calls are refreshed in place, so the rest of the page stays still.
  function pollLive(id, hasLiveApi) {
    refreshTimer = setTimeout(async () => {
      if (id !== renderId) return;
      try {
        const calls = hasLiveApi ? (await api("/api/live")).calls
          : (await api("/api/calls?limit=50&outcome=in-progress")).calls.filter((c) => c.outcome === "in-progress");
        if (id !== renderId) return;
        $("live-calls").replaceChildren(liveTable(calls));
        $("live-count").textContent = calls.length;
        pollLive(id, hasLiveApi);
      } catch (error) {
        if (error instanceof Unauthorized) route();
        else pollLive(id, hasLiveApi);
      }
    }, REFRESH_MS);
  }

  function latencyChart(stats) {
    const series = stats.series || [];
    if (!series.some((b) => b.v2v_p50 !== null && b.v2v_p50 !== undefined)) {
      return el("p", { class: "empty" }, "No answered turns in this period.");
    }
    const xs = series.map((b) => b.start);
    return el("div", { class: "chart", id: "latency-chart" },
      Charts.lineChart(xs, [
        { name: "p50", color: "var(--s-stt)", values: series.map((b) => b.v2v_p50 ?? null) },
        { name: "p95", color: "var(--s-heard)", values: series.map((b) => b.v2v_p95 ?? null) },
      ], (v) => (v >= 1000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`)),
      el("div", { class: "legend" }, el("span", {}, el("i", { style: "background: var(--s-stt)" }), "p50"),
        el("span", {}, el("i", { style: "background: var(--s-heard)" }), "p95")));
  }

  function callsChart(stats) {
    const series = stats.series || [];
    if (!series.some((b) => b.calls)) return el("p", { class: "empty" }, "No calls in this period.");
    return el("div", { class: "chart", id: "calls-chart" },
      Charts.barChart(series.map((b) => b.start), series.map((b) => b.calls || 0), "var(--brand)", (v) => String(Math.round(v))));
  }

  function stagesTable(stats) {
    const rows = Voxline.STAGES.map((stage) => ({ ...stage, value: (stats.stages || {})[stage.key] }))
      .filter((row) => row.value && row.value.count);
    if (!rows.length) return el("p", { class: "empty" }, "No turns in this period.");
    const max = Math.max(...rows.map((r) => r.value.p95 || 0), 1);
    return el("table", { id: "stages-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "Stage"), el("th", { class: "num" }, "Turns"), el("th", { class: "num" }, "p50"),
        el("th", { class: "num" }, "p95"), el("th", { class: "num" }, "p99"), el("th", { style: "width: 35%" }, ""))),
      el("tbody", {}, rows.map((row) => el("tr", { dataset: { stage: row.key } },
        el("td", {}, el("i", { style: `display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:8px;background:${row.color}` }),
          row.label, " ", el("span", { class: "muted" }, row.detail)),
        el("td", { class: "num" }, row.value.count ?? "—"),
        el("td", { class: "num" }, ms(row.value.p50)),
        el("td", { class: "num" }, ms(row.value.p95)),
        el("td", { class: "num" }, ms(row.value.p99)),
        el("td", {}, el("div", { class: "meter", title: "p50 (solid) and p95" },
          el("div", { style: `width:${(100 * (row.value.p50 || 0)) / max}%;background:${row.color}` })))))));
  }

  // ---- the call list ----
  function epochFromInput(value) {
    return value ? String(new Date(value).getTime() / 1000) : "";
  }

  function inputFromEpoch(value) {
    if (!value) return "";
    const date = new Date(Number(value) * 1000);
    const local = new Date(date.getTime() - date.getTimezoneOffset() * 60000);
    return local.toISOString().slice(0, 16);
  }

  async function renderCalls(params, id) {
    const offset = Math.max(0, Number(params.get("offset") || 0));
    const query = new URLSearchParams({ limit: PAGE_SIZE, offset });
    for (const key of ["number", "outcome", "path", "since", "until"]) if (params.get(key)) query.set(key, params.get(key));
    const data = await api(`/api/calls?${query}`);
    const calls = data ? data.calls : [];
    const total = data && typeof data.total === "number" ? data.total : offset + calls.length;

    const field = (label, input) => el("label", { class: "field" }, label, input);
    const select = (name, values) => el("select", { name }, el("option", { value: "" }, "Any"),
      values.map((v) => el("option", { value: v, selected: params.get(name) === v }, v)));
    const form = el("form", { class: "filters", id: "filters", onsubmit: (event) => {
      event.preventDefault();
      const data = new FormData(event.target);
      const next = new URLSearchParams();
      for (const key of ["number", "outcome", "path"]) if (data.get(key)) next.set(key, data.get(key));
      for (const key of ["since", "until"]) if (data.get(key)) next.set(key, epochFromInput(data.get(key)));
      location.hash = `#/calls${next.toString() ? `?${next}` : ""}`;
    } },
    field("Number", el("input", { name: "number", placeholder: "+1415…", value: params.get("number") || "" })),
    field("Outcome", select("outcome", OUTCOMES)),
    field("Path", select("path", PATHS)),
    field("From", el("input", { name: "since", type: "datetime-local", value: inputFromEpoch(params.get("since")) })),
    field("To", el("input", { name: "until", type: "datetime-local", value: inputFromEpoch(params.get("until")) })),
    el("button", { class: "primary", type: "submit" }, "Apply"),
    el("button", { type: "button", onclick: () => { location.hash = "#/calls"; } }, "Reset"));

    const page = (newOffset) => {
      const next = new URLSearchParams(params);
      next.set("offset", newOffset);
      location.hash = `#/calls?${next}`;
    };
    const pager = el("div", { class: "pager" },
      el("span", {}, calls.length ? `${offset + 1}–${offset + calls.length} of ${total.toLocaleString()}` : `0 of ${total}`),
      el("div", { class: "buttons" },
        el("button", { type: "button", disabled: offset === 0, onclick: () => page(Math.max(0, offset - PAGE_SIZE)) }, "← Newer"),
        el("button", { type: "button", disabled: offset + calls.length >= total, onclick: () => page(offset + PAGE_SIZE) }, "Older →")));

    show(id,
      el("h1", {}, "Calls"),
      el("p", { class: "subtitle" }, "Every call this server answered, newest first."),
      el("section", { class: "panel" }, form, callsTable(calls, { empty: "No call matches these filters." }), pager));
  }

  // ---- one call ----
  async function renderCall(sid, id) {
    const call = await api(`/api/calls/${encodeURIComponent(sid)}`);
    if (!call) {
      show(id, el("p", { class: "empty" }, `No call ${sid}.`), el("p", { class: "empty" }, el("a", { href: "#/calls" }, "← All calls")));
      return;
    }
    const turns = call.turns || [];
    const voiceToVoice = turns.map((t) => (t.stages_ms || {}).first_frame_sent).filter((v) => typeof v === "number").sort((a, b) => a - b);
    const p50 = call.v2v_p50_ms ?? (voiceToVoice.length ? voiceToVoice[Math.floor((voiceToVoice.length - 1) / 2)] : null);

    const header = el("div", {},
      el("p", { class: "muted" }, el("a", { href: "#/calls" }, "← All calls")),
      el("h1", { class: "mono", style: "font-size: 18px" }, call.call_sid),
      el("p", { class: "subtitle" }, el("span", { class: "badge" }, call.path), " ", outcomeBadge(call.outcome), " ",
        `${call.agent || ""} · started ${dateTime(call.started_at)}`));
    const cards = el("div", { class: "grid cards" },
      card("Caller", call.caller || "unknown"),
      card("Called", call.called || "—"),
      card("Duration", callDuration(call)),
      card("Turns", call.turn_count ?? turns.length),
      card("Voice-to-voice p50", round(p50), "ms"));

    const legend = el("div", { class: "legend" },
      Voxline.STAGES.map((s) => el("span", {}, el("i", { style: `background:${s.color}` }), `${s.label}: ${s.detail}`)));
    const conversation = el("div", { id: "turns" });
    const greeting = (call.history || [])[0];
    if (greeting && greeting.role === "assistant") {
      conversation.append(el("div", { class: "chat", style: "margin-bottom: 16px" },
        el("div", { class: "bubble agent" }, el("span", { class: "who" }, "Agent · greeting"), greeting.content)));
    }
    if (!turns.length) conversation.append(el("p", { class: "empty" }, "No turns yet."));
    for (const turn of turns) {
      conversation.append(el("div", { class: "turn", dataset: { turn: turn.index } },
        el("div", { class: "turn-grid" },
          el("div", { class: "chat" }, el("div", { class: "note" }, `Turn ${turn.index}${turn.started_at ? ` · ${dateTime(turn.started_at)}` : ""}`),
            ...Voxline.turnBubbles(turn)),
          el("div", {}, Voxline.waterfall(turn.stages_ms)))));
    }

    const nodes = [header, cards, panel("Conversation", el("span", { class: "muted" }, "latency in ms after the caller's end of speech"),
      legend, conversation)];
    const events = call.events || [];
    if (events.length) nodes.push(panel("Events", "", eventsTable(events, call.started_at)));
    if (show(id, ...nodes) && call.outcome === "in-progress") refreshLater(id);
  }

  function eventsTable(events, startedAt) {
    return el("table", { id: "events-table" },
      el("thead", {}, el("tr", {}, el("th", {}, "At"), el("th", {}, "Event"), el("th", {}, "Details"))),
      el("tbody", {}, events.map((event) => {
        const { at, kind, details, ...rest } = event;
        const info = details ?? rest;
        return el("tr", {},
          el("td", { class: "num", style: "width: 90px" }, startedAt ? `+${duration(at - startedAt)}` : dateTime(at)),
          el("td", {}, el("span", { class: `badge ${kind === "error" ? "bad" : kind === "barge-in" ? "warn" : ""}` }, kind)),
          el("td", { class: "mono" }, Object.entries(info).map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : v}`).join("  ")));
      })));
  }

  // ---- token ----
  function askForToken(error) {
    $("view").replaceChildren();
    $("token-panel").classList.remove("hidden");
    $("forget-token").classList.add("hidden");
    $("token-error").textContent = error || "";
    $("token-error").classList.toggle("hidden", !error);
    $("token-input").focus();
  }

  function showApp() {
    $("token-panel").classList.add("hidden");
    $("forget-token").classList.remove("hidden");
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set($("token-input").value.trim());
    $("token-input").value = "";
    route();
  });
  $("forget-token").addEventListener("click", () => {
    token.clear();
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();

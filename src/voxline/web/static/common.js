// Shared by the softphone and the dashboard: the stored token, DOM and formatting helpers, the
// turn stages, the chat bubbles of a turn and its latency waterfall (hand-written SVG).
"use strict";

const Voxline = (() => {
  const TOKEN_KEY = "voxline.apiToken";
  const SVG_NS = "http://www.w3.org/2000/svg";

  const token = {
    get: () => localStorage.getItem(TOKEN_KEY) || "",
    set: (value) => localStorage.setItem(TOKEN_KEY, value),
    clear: () => localStorage.removeItem(TOKEN_KEY),
  };

  // el("div", {class: "x", onclick: fn}, child, "text", ...)
  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs = {}, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value !== null && value !== undefined) node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  const ms = (value) => (value === null || value === undefined ? "—" : `${Math.round(value).toLocaleString()} ms`);

  function dateTime(epochSeconds) {
    if (!epochSeconds) return "—";
    return new Date(epochSeconds * 1000).toLocaleString(undefined, {
      month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "—";
    const s = Math.max(0, Math.round(seconds));
    return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
  }

  // The streaming path's stages, in pipeline order, with what each bar of the waterfall means.
  const STAGES = [
    { key: "turn_detected", label: "Turn detected", detail: "end of speech → silence window closed", color: "var(--s-turn)" },
    { key: "stt_final", label: "STT", detail: "final transcript", color: "var(--s-stt)" },
    { key: "llm_first_token", label: "LLM", detail: "first token", color: "var(--s-llm)" },
    { key: "first_audio", label: "TTS", detail: "first audio synthesized", color: "var(--s-tts)" },
    { key: "first_frame_sent", label: "Sent", detail: "first frame sent (voice-to-voice)", color: "var(--s-sent)" },
    { key: "first_mark_echoed", label: "Heard", detail: "first clause played (mark echoed)", color: "var(--s-heard)" },
  ];
  const KNOWN = new Set(STAGES.map((s) => s.key));
  const EXTRA_COLORS = ["#74c0fc", "#b197fc", "#63e6be", "#ffa94d", "#ff8787", "#a9e34b"];

  // The stages of one turn as waterfall rows: the known ones in order, then any others
  // (the recording path has its own), ordered by time. Keys in seconds ("_s") are not offsets.
  function stageRows(stages) {
    const rows = STAGES.map((s) => ({ ...s, at: stages[s.key] ?? null }));
    const extra = Object.entries(stages || {})
      .filter(([key, value]) => !KNOWN.has(key) && !key.endsWith("_s") && typeof value === "number")
      .sort((a, b) => a[1] - b[1])
      .map(([key, value], i) => ({ key, label: key.replace(/_/g, " "), detail: "", color: EXTRA_COLORS[i % EXTRA_COLORS.length], at: value }));
    return (extra.length && rows.every((r) => r.at === null)) ? extra : [...rows, ...extra];
  }

  // A latency waterfall: one row per stage, each bar from the previous stage reached to this one.
  function waterfall(stages, width = 520) {
    const rows = stageRows(stages || {});
    const labelWidth = 112;
    const valueWidth = 64;
    const rowHeight = 22;
    const top = 6;
    const plotWidth = width - labelWidth - valueWidth;
    const reached = rows.filter((r) => r.at !== null).map((r) => r.at);
    const max = niceCeiling(Math.max(100, ...reached));
    const x = (value) => labelWidth + (Math.max(0, value) / max) * plotWidth;
    const height = top + rows.length * rowHeight + 22;
    const root = svg("svg", { class: "waterfall", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": "Latency waterfall" });
    const axis = svg("g", { class: "axis" });
    for (const tick of ticks(max, 5)) {
      axis.append(svg("line", { x1: x(tick), x2: x(tick), y1: top - 2, y2: top + rows.length * rowHeight }));
      axis.append(svg("text", { x: x(tick), y: height - 6, "text-anchor": "middle" }, tick >= 1000 ? `${tick / 1000} s` : `${tick} ms`));
    }
    root.append(axis);
    let previous = 0;
    rows.forEach((row, i) => {
      const y = top + i * rowHeight;
      const group = svg("g", { class: "stage", "data-stage": row.key });
      group.append(svg("title", {}, `${row.label}${row.detail ? ` (${row.detail})` : ""}: ${ms(row.at)} after end of speech`));
      group.append(svg("text", { x: 0, y: y + 15 }, row.label));
      if (row.at === null) {
        group.append(svg("text", { x: labelWidth + 4, y: y + 15, class: "missing" }, "not reached"));
      } else {
        const start = Math.min(previous, row.at);
        group.append(svg("rect", { x: x(start), y: y + 4, width: Math.max(2, x(row.at) - x(start)), height: rowHeight - 8,
          rx: 3, fill: row.color }));
        group.append(svg("text", { x: width - 2, y: y + 15, "text-anchor": "end", "font-variant-numeric": "tabular-nums" }, ms(row.at)));
        previous = Math.max(previous, row.at);
      }
      root.append(group);
    });
    return root;
  }

  function niceCeiling(value) {
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function ticks(max, count) {
    const step = niceCeiling(max / count);
    const out = [];
    for (let t = 0; t <= max + 1e-9; t += step) out.push(Math.round(t));
    return out;
  }

  // A turn as chat bubbles: what the caller said, then what the agent said (the unheard rest struck through).
  function turnBubbles(turn) {
    const out = [];
    if (turn.caller_text) out.push(el("div", { class: "bubble caller", dataset: { turn: turn.index } },
      el("span", { class: "who" }, "Caller"), turn.caller_text));
    const said = turn.agent_text || "";
    const heard = turn.heard_text || "";
    if (said || heard) {
      const body = el("div", { class: "bubble agent", dataset: { turn: turn.index } }, el("span", { class: "who" }, "Agent"));
      if (turn.interrupted && heard && said.startsWith(heard)) {
        body.append(heard, " ", el("span", { class: "unheard", title: "not heard: the caller interrupted" }, said.slice(heard.length).trim()));
      } else {
        body.append(turn.interrupted ? heard || said : said || heard);
      }
      const meta = el("div", { class: "meta" });
      const stages = turn.stages_ms || {};
      if (stages.first_frame_sent !== undefined) meta.append(el("span", { class: "badge" }, `voice-to-voice ${ms(stages.first_frame_sent)}`));
      if (turn.interrupted) meta.append(el("span", { class: "badge warn" }, "interrupted"));
      if (turn.failed) meta.append(el("span", { class: "badge bad" }, "provider failed"));
      if (turn.stt_early) meta.append(el("span", { class: "badge" }, "early STT"));
      if (meta.childNodes.length) body.append(meta);
      out.push(body);
    }
    return out;
  }

  return { token, el, svg, ms, dateTime, duration, STAGES, stageRows, waterfall, niceCeiling, ticks, turnBubbles };
})();

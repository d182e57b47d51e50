// The softphone: the browser plays Twilio's part of a Media Stream.
//
// The microphone goes through the "ulaw-capture" worklet (8 kHz μ-law, 20 ms frames) and is sent
// as Twilio "media" messages after "connected" and "start"; the agent's "media" is played by the
// "ulaw-player" worklet, each "mark" is echoed once the audio before it has played, and "clear"
// drops what is queued (echoing the pending marks, as Twilio does). The server's extra
// "voxline.call" / "voxline.turn" messages fill the transcript.
"use strict";

(() => {
  const { el, ms, token } = Voxline;
  const tokenRequired = document.body.dataset.tokenRequired === "true";
  const $ = (id) => document.getElementById(id);

  function randomSid(prefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function toBase64(bytes) {
    let binary = "";
    for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary);
  }

  function fromBase64(text) {
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  class Softphone {
    constructor(view) {
      this.view = view;
      this.stats = { framesSent: 0, framesReceived: 0, framesPlayed: 0, marksReceived: 0, marksEchoed: 0, clears: 0, turns: 0 };
      this.turns = [];
      this.live = false;
      this.ended = false;
    }

    async start(apiToken) {
      this.mic = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
      this.context = new AudioContext({ latencyHint: "interactive" });
      await this.context.audioWorklet.addModule("/static/softphone-worklet.js");
      this.player = new AudioWorkletNode(this.context, "ulaw-player", { numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1] });
      this.player.port.onmessage = (event) => this.fromPlayer(event.data);
      this.player.connect(this.context.destination);
      this.capture = new AudioWorkletNode(this.context, "ulaw-capture", { numberOfInputs: 1, numberOfOutputs: 0 });
      this.capture.port.onmessage = (event) => this.fromMicrophone(event.data);
      this.context.createMediaStreamSource(this.mic).connect(this.capture);
      await this.context.resume();

      this.streamSid = randomSid("MZ");
      this.callSid = randomSid("CA");
      this.accountSid = randomSid("AC");
      this.sequence = 1;
      this.chunk = 1;
      const scheme = location.protocol === "https:" ? "wss" : "ws";
      this.ws = new WebSocket(`${scheme}://${location.host}/phone-stream`);
      this.ws.onopen = () => {
        this.ws.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
        const parameters = { From: "softphone", To: "agent" };
        if (apiToken) parameters.token = apiToken;
        this.send({
          event: "start",
          sequenceNumber: this.next(),
          start: {
            accountSid: this.accountSid, streamSid: this.streamSid, callSid: this.callSid, tracks: ["inbound"],
            mediaFormat: { encoding: "audio/x-mulaw", sampleRate: 8000, channels: 1 }, customParameters: parameters,
          },
          streamSid: this.streamSid,
        });
        this.live = true;
        this.startedAt = performance.now();
        this.view.onStarted(this);
      };
      this.ws.onmessage = (event) => this.fromServer(event.data);
      this.ws.onclose = (event) => this.finish(event.code, event.reason);
      this.ws.onerror = () => this.view.onError("The connection to the server failed.");
    }

    next() { return String(this.sequence++); }

    send(message) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(message));
    }

    fromMicrophone(message) {
      if (message.type !== "frame") return;
      this.view.level("mic-level", message.level);
      if (!this.live) return;
      const chunk = this.chunk++;
      this.send({
        event: "media",
        sequenceNumber: this.next(),
        media: { track: "inbound", chunk: String(chunk), timestamp: String((chunk - 1) * 20), payload: toBase64(message.ulaw) },
        streamSid: this.streamSid,
      });
      this.stats.framesSent++;
    }

    echoMark(name) {
      this.send({ event: "mark", sequenceNumber: this.next(), streamSid: this.streamSid, mark: { name } });
      this.stats.marksEchoed++;
    }

    fromPlayer(message) {
      if (message.type === "played") {
        this.echoMark(message.name);
      } else if (message.type === "cleared") {
        message.marks.forEach((name) => this.echoMark(name));
      } else if (message.type === "progress") {
        this.stats.framesPlayed = Math.floor(message.played / 160);
        this.view.level("agent-level", message.level);
      }
      this.view.showStats(this);
    }

    fromServer(text) {
      let message;
      try {
        message = JSON.parse(text);
      } catch {
        console.warn("not JSON from the server", text);
        return;
      }
      switch (message.event) {
        case "media": {
          const ulaw = fromBase64(message.media.payload);
          this.stats.framesReceived += ulaw.length / 160;
          this.player.port.postMessage({ type: "media", ulaw }, [ulaw.buffer]);
          break;
        }
        case "mark":
          this.stats.marksReceived++;
          this.player.port.postMessage({ type: "mark", name: message.mark.name });
          break;
        case "clear":
          this.stats.clears++;
          this.player.port.postMessage({ type: "clear" });
          break;
        case "voxline.call":
          this.view.onCall(message);
          break;
        case "voxline.caller":
          this.view.onCaller(message);
          break;
        case "voxline.turn":
          this.turns.push(message.turn);
          this.stats.turns = this.turns.length;
          this.view.onTurn(message.turn);
          break;
        default:
          console.warn("unexpected message from the server", message.event);
      }
      this.view.showStats(this);
    }

    hangUp() {
      if (this.live) {
        this.send({ event: "stop", sequenceNumber: this.next(), streamSid: this.streamSid,
          stop: { accountSid: this.accountSid, callSid: this.callSid } });
      }
      if (this.ws) this.ws.close(1000, "caller hung up");
      this.finish(1000, "caller hung up");
    }

    finish(code, reason) {
      if (this.ended) return;
      this.ended = true;
      this.live = false;
      this.capture?.port.postMessage("stop");
      this.player?.port.postMessage({ type: "stop" });
      this.mic?.getTracks().forEach((track) => track.stop());
      this.context?.close();
      this.view.onEnded(this, code, reason);
    }
  }

  // ---- the page ----
  const view = {
    phone: null,
    timer: null,

    setState(text, kind = "") {
      $("call-state").className = `call-state ${kind}`;
      $("call-state-text").textContent = text;
    },

    level(id, rms) {
      const percent = Math.min(100, Math.round(Math.sqrt(rms) * 160));
      $(id).style.width = `${percent}%`;
    },

    showStats(phone) {
      const s = phone.stats;
      $("stat-sent").textContent = s.framesSent.toLocaleString();
      $("stat-received").textContent = s.framesReceived.toLocaleString();
      $("stat-played").textContent = s.framesPlayed.toLocaleString();
      $("stat-marks").textContent = `${s.marksEchoed} / ${s.marksReceived}`;
      $("stat-clears").textContent = s.clears;
    },

    onStarted(phone) {
      this.setState("Connected", "live");
      $("stat-call").textContent = phone.callSid.slice(0, 14) + "…";
      $("stat-call").title = phone.callSid;
      this.timer = setInterval(() => {
        $("stat-duration").textContent = Voxline.duration((performance.now() - phone.startedAt) / 1000);
      }, 500);
    },

    onCall(message) {
      this.setState("In call: speak after the greeting", "live");
      $("transcript-empty")?.remove();
      $("transcript").append(el("div", { class: "bubble agent greeting" }, el("span", { class: "who" }, "Agent"), message.greeting));
      if (token.get()) {
        const link = $("call-link");
        link.href = `/dashboard#/calls/${encodeURIComponent(message.callSid)}`;
        link.classList.remove("hidden");
      }
    },

    onCaller(message) {
      // What the caller said, shown while the agent answers; the finished turn replaces it.
      $("transcript").append(el("div", { class: "bubble caller pending", dataset: { pending: message.turn } },
        el("span", { class: "who" }, "Caller"), message.text));
      $("transcript").lastElementChild.scrollIntoView({ block: "nearest" });
    },

    onTurn(turn) {
      this.setState("In call", "live");
      const transcript = $("transcript");
      transcript.querySelectorAll(`[data-pending="${turn.index}"]`).forEach((bubble) => bubble.remove());
      transcript.append(...Voxline.turnBubbles(turn));
      const stages = turn.stages_ms || {};
      const details = Voxline.STAGES.filter((s) => s.key !== "turn_detected" && stages[s.key] !== undefined)
        .map((s) => `${s.label} ${ms(stages[s.key])}`).join(" · ");
      if (details) transcript.append(el("div", { class: "note latency", dataset: { turn: turn.index } }, details));
      transcript.lastElementChild.scrollIntoView({ block: "nearest" });
      $("turn-count").textContent = `${this.phone.turns.length} turn${this.phone.turns.length === 1 ? "" : "s"}`;
    },

    onError(text) {
      const box = $("call-error");
      box.textContent = text;
      box.classList.remove("hidden");
    },

    onEnded(phone, code, reason) {
      clearInterval(this.timer);
      this.level("mic-level", 0);
      this.level("agent-level", 0);
      const button = $("call-button");
      button.textContent = "Call again";
      button.className = "call-button primary";
      button.disabled = false;
      if (code === 1008 && reason === "invalid token") {
        token.clear();
        this.setState("Not connected", "error");
        askForToken("The server refused this token.");
        return;
      }
      if (code === 1013) {
        this.setState("Not connected", "error");
        this.onError(`The server cannot take a call right now (${reason || "busy"}).`);
        return;
      }
      const byServer = code === 1000 && reason === "call ended";
      this.setState(byServer ? "The agent ended the call" : code === 1000 || code === 1005 ? "Call ended" : `Disconnected (${code})`,
        byServer || code === 1000 || code === 1005 ? "" : "error");
    },
  };

  async function placeCall() {
    const button = $("call-button");
    if (view.phone && view.phone.live) {
      view.phone.hangUp();
      return;
    }
    $("call-error").classList.add("hidden");
    $("transcript").replaceChildren();
    $("call-link").classList.add("hidden");
    $("turn-count").textContent = "";
    button.disabled = true;
    view.setState("Connecting…");
    const phone = new Softphone(view);
    view.phone = phone;
    window.voxlineSoftphone = phone; // for the browser tests and the console
    try {
      await phone.start(tokenRequired ? token.get() : "");
      button.textContent = "Hang up";
      button.className = "call-button danger";
      button.disabled = false;
    } catch (error) {
      view.onError(error.name === "NotAllowedError" ? "Microphone access was refused." : `Could not start the call: ${error.message}`);
      phone.finish(0, "");
      view.setState("Not connected", "error");
    }
  }

  function askForToken(error) {
    $("phone").classList.add("hidden");
    $("token-panel").classList.remove("hidden");
    $("token-error").textContent = error || "";
    $("token-error").classList.toggle("hidden", !error);
    $("token-input").focus();
  }

  function showPhone() {
    $("token-panel").classList.add("hidden");
    $("phone").classList.remove("hidden");
    $("forget-token").classList.toggle("hidden", !token.get());
  }

  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    token.set($("token-input").value.trim());
    showPhone();
  });
  $("forget-token").addEventListener("click", () => {
    token.clear();
    if (tokenRequired) askForToken();
    else showPhone();
  });
  $("call-button").addEventListener("click", placeCall);

  if (tokenRequired && !token.get()) askForToken();
  else showPhone();
})();

// Audio for the softphone, on the audio rendering thread.
//
// "ulaw-capture": microphone at the context's rate -> low-pass -> 8 kHz -> G.711 μ-law, posted
// to the page as 160-byte (20 ms) frames, like a phone line.
// "ulaw-player": the agent's μ-law frames -> 8 kHz samples -> the context's rate, played in
// order. Marks are queued between the frames and reported back once every sample before them
// has been played; "clear" drops the queued audio and reports every pending mark at once, as
// Twilio does.

import { FRAME_SAMPLES, LINE_RATE, ULAW_TO_FLOAT, linearToUlaw, lowPass } from "./ulaw.js";

class UlawCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = sampleRate / LINE_RATE;      // input samples per output sample (6 at 48 kHz)
    this.taps = lowPass(sampleRate);
    this.ring = new Float32Array(this.taps.length + 1);  // the latest input samples
    this.newest = 0;
    this.next = this.step;                    // where the next output sample falls, in input samples after the previous one
    this.frame = new Uint8Array(FRAME_SAMPLES);
    this.filled = 0;
    this.energy = 0;
    this.running = true;
    this.port.onmessage = (event) => { if (event.data === "stop") this.running = false; };
  }

  // The low-passed signal `lag` input samples before the newest one. It is only computed where
  // an output sample falls (twice per 8 kHz sample), not for every input sample.
  filtered(lag) {
    const { ring, taps } = this;
    let j = (this.newest - lag + ring.length) % ring.length;
    let y = 0;
    for (let i = 0; i < taps.length; i++) {
      y += taps[i] * ring[j];
      j = j === 0 ? ring.length - 1 : j - 1;
    }
    return y;
  }

  emit(value) {
    this.frame[this.filled++] = linearToUlaw(value);
    this.energy += value * value;
    if (this.filled === FRAME_SAMPLES) {
      const level = Math.sqrt(this.energy / FRAME_SAMPLES);
      this.port.postMessage({ type: "frame", ulaw: this.frame, level }, [this.frame.buffer]);
      this.frame = new Uint8Array(FRAME_SAMPLES);
      this.filled = 0;
      this.energy = 0;
    }
  }

  process(inputs) {
    const channel = inputs[0] && inputs[0][0];
    if (!this.running) return false;
    if (!channel) return true;
    for (let i = 0; i < channel.length; i++) {
      this.newest = (this.newest + 1) % this.ring.length;
      this.ring[this.newest] = channel[i];
      // Output samples between the previous input sample and this one, linearly interpolated.
      if (this.next <= 1) {
        const before = this.filtered(1);
        const now = this.filtered(0);
        while (this.next <= 1) {
          this.emit(before + (now - before) * this.next);
          this.next += this.step;
        }
      }
      this.next -= 1;
    }
    return true;
  }
}

class UlawPlayer extends AudioWorkletProcessor {
  constructor() {
    super();
    this.step = LINE_RATE / sampleRate;       // line samples per output sample
    this.queue = [];                          // Float32Array chunks at 8 kHz, and {mark: name}
    this.chunk = null;
    this.index = 0;
    this.previous = 0;                        // the two line samples the output is between
    this.current = 0;
    this.phase = 0;
    this.played = 0;                          // line samples played
    this.reported = 0;
    this.energy = 0;
    this.counted = 0;
    this.running = true;
    this.port.onmessage = (event) => this.receive(event.data);
  }

  receive(message) {
    if (message.type === "media") {
      const samples = new Float32Array(message.ulaw.length);
      for (let i = 0; i < samples.length; i++) samples[i] = ULAW_TO_FLOAT[message.ulaw[i]];
      this.queue.push(samples);
    } else if (message.type === "mark") {
      this.queue.push({ mark: message.name });
    } else if (message.type === "clear") {
      const marks = this.queue.filter((item) => item.mark !== undefined).map((item) => item.mark);
      this.queue = [];
      this.chunk = null;
      this.port.postMessage({ type: "cleared", marks });
    } else if (message.type === "stop") {
      this.running = false;
    }
  }

  // The next line sample, or null when nothing is queued. A mark is reported as soon as every
  // sample queued before it has been taken for playing.
  nextSample() {
    for (;;) {
      if (this.chunk !== null && this.index < this.chunk.length) {
        this.played++;
        return this.chunk[this.index++];
      }
      this.chunk = null;
      const item = this.queue.shift();
      if (item === undefined) return null;
      if (item.mark !== undefined) {
        this.port.postMessage({ type: "played", name: item.mark });
      } else {
        this.chunk = item;
        this.index = 0;
      }
    }
  }

  process(_inputs, outputs) {
    if (!this.running) return false;
    const out = outputs[0][0];
    let live = 0;
    for (let i = 0; i < out.length; i++) {
      this.phase += this.step;
      while (this.phase >= 1) {
        this.phase -= 1;
        this.previous = this.current;
        const sample = this.nextSample();
        this.current = sample === null ? 0 : sample;
        if (sample !== null) live++;
      }
      out[i] = this.previous + (this.current - this.previous) * this.phase;
      this.energy += out[i] * out[i];
    }
    this.counted += out.length;
    for (let c = 1; c < outputs[0].length; c++) outputs[0][c].set(out);
    // Progress for the page's meters, about every 20 ms of audio played (and once when it stops).
    if (this.played - this.reported >= FRAME_SAMPLES || (live === 0 && this.energy > 0)) {
      this.port.postMessage({ type: "progress", played: this.played, level: Math.sqrt(this.energy / this.counted) });
      this.reported = this.played;
      this.energy = 0;
      this.counted = 0;
    }
    return true;
  }
}

registerProcessor("ulaw-capture", UlawCapture);
registerProcessor("ulaw-player", UlawPlayer);

// G.711 μ-law and the anti-aliasing filter of the softphone's audio, as an ES module: the
// AudioWorklet imports it, and so can a page (the browser tests check it against audioop).

export const LINE_RATE = 8000;
export const FRAME_SAMPLES = 160;

// G.711 μ-law, the same code for the same sample as CPython's audioop (14-bit, bias 33).
const SEGMENT_ENDS = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

export function linearToUlaw(sample) {
  let pcm = Math.max(-32768, Math.min(32767, Math.round(sample * 32768))) >> 2;
  let mask = 0xff;
  if (pcm < 0) {
    pcm = -pcm;
    mask = 0x7f;
  }
  pcm = Math.min(pcm, 8159) + 0x21;
  let segment = 0;
  while (segment < 8 && pcm > SEGMENT_ENDS[segment]) segment++;
  if (segment >= 8) return 0x7f ^ mask;
  return ((segment << 4) | ((pcm >> (segment + 1)) & 0x0f)) ^ mask;
}

export const ULAW_TO_FLOAT = (() => {
  const table = new Float32Array(256);
  for (let byte = 0; byte < 256; byte++) {
    const u = ~byte & 0xff;
    const exponent = (u >> 4) & 7;
    const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    table[byte] = ((u & 0x80) ? -magnitude : magnitude) / 32768;
  }
  return table;
})();

// Windowed-sinc low-pass (Blackman): flat to about 3.1 kHz, at least 74 dB down from about
// 4.1 kHz, so that nothing above the 8 kHz line's 4 kHz folds back into the telephone band.
const CUTOFF_HZ = 3600;
const TRANSITION_HZ = 1000;

export function lowPass(rate) {
  const taps = 2 * Math.ceil((5.5 * rate) / TRANSITION_HZ / 2) + 1;  // Blackman: width ≈ 5.5·rate/taps
  const h = new Float32Array(taps);
  const fc = CUTOFF_HZ / rate;
  const middle = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const n = i - middle;
    const sinc = n === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * n) / (Math.PI * n);
    const window = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * window;
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum;
  return h;
}

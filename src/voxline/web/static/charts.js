// Small hand-written SVG charts for the dashboard: a time-series line chart and a bar chart.
"use strict";

const Charts = (() => {
  const { svg, niceCeiling, ticks } = Voxline;
  const WIDTH = 640;
  const HEIGHT = 220;
  const PAD = { top: 14, right: 16, bottom: 28, left: 56 };

  function timeLabel(epochSeconds, spanSeconds) {
    const date = new Date(epochSeconds * 1000);
    if (spanSeconds > 2 * 86400) return date.toLocaleDateString(undefined, { month: "short", day: "numeric" }) +
      " " + date.toLocaleTimeString(undefined, { hour: "2-digit" });
    return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  }

  function frame(xs, maxY, formatY) {
    const x0 = Math.min(...xs);
    const x1 = Math.max(...xs, x0 + 1);
    const plotW = WIDTH - PAD.left - PAD.right;
    const plotH = HEIGHT - PAD.top - PAD.bottom;
    const x = (v) => PAD.left + ((v - x0) / (x1 - x0)) * plotW;
    const y = (v) => PAD.top + plotH - (v / maxY) * plotH;
    const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img" });
    const axis = svg("g", { class: "axis" });
    for (const tick of ticks(maxY, 4)) {
      axis.append(svg("line", { class: "grid-line", x1: PAD.left, x2: WIDTH - PAD.right, y1: y(tick), y2: y(tick) }));
      axis.append(svg("text", { x: PAD.left - 8, y: y(tick) + 4, "text-anchor": "end" }, formatY(tick)));
    }
    const count = Math.min(6, xs.length);
    for (let i = 0; i < count; i++) {
      const value = x0 + ((x1 - x0) * i) / Math.max(1, count - 1);
      axis.append(svg("text", { x: x(value), y: HEIGHT - 8, "text-anchor": i === 0 ? "start" : i === count - 1 ? "end" : "middle" },
        timeLabel(value, x1 - x0)));
    }
    root.append(axis);
    return { root, x, y };
  }

  // series: [{name, color, values: [number|null]}] over the shared xs (epoch seconds).
  function lineChart(xs, series, formatY) {
    const all = series.flatMap((s) => s.values).filter((v) => v !== null && v !== undefined);
    const maxY = niceCeiling(Math.max(1, ...all) * 1.05);
    const { root, x, y } = frame(xs, maxY, formatY);
    for (const s of series) {
      let path = "";
      let pen = false;
      s.values.forEach((value, i) => {
        if (value === null || value === undefined) {
          pen = false;
          return;
        }
        path += `${pen ? "L" : "M"}${x(xs[i]).toFixed(1)},${y(value).toFixed(1)}`;
        pen = true;
      });
      root.append(svg("path", { class: "series", d: path, stroke: s.color, "data-series": s.name }));
      s.values.forEach((value, i) => {
        if (value === null || value === undefined) return;
        root.append(svg("circle", { cx: x(xs[i]), cy: y(value), r: 3, fill: s.color },
          svg("title", {}, `${s.name}: ${formatY(value)} (${new Date(xs[i] * 1000).toLocaleString()})`)));
      });
    }
    return root;
  }

  function barChart(xs, values, color, formatY) {
    const maxY = niceCeiling(Math.max(1, ...values) * 1.05);
    const { root, x, y } = frame(xs, maxY, formatY);
    const step = xs.length > 1 ? x(xs[1]) - x(xs[0]) : 20;
    const width = Math.max(2, Math.min(28, step * 0.7));
    xs.forEach((at, i) => {
      if (!values[i]) return;
      root.append(svg("rect", { x: x(at) - width / 2, y: y(values[i]), width, height: y(0) - y(values[i]), rx: 2, fill: color },
        svg("title", {}, `${values[i]} (${new Date(at * 1000).toLocaleString()})`)));
    });
    return root;
  }

  return { lineChart, barChart };
})();

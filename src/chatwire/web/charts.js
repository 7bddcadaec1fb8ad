// Bar charts drawn by uPlot (vendored in vendor/, loaded the first time a chart is drawn).
// Each chart has a caption naming its series and colours; the numbers themselves are in
// the page's tables, where a keyboard or a screen reader reaches them.

import { h } from "./dom.js";

let loading = null;

/** uPlot, its script and style loaded from chatwire itself once. */
export function uPlotLoaded() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      document.head.append(h("link", { rel: "stylesheet", href: "/web/vendor/uPlot.min.css" }));
      const script = h("script", { src: "/web/vendor/uPlot.iife.min.js" });
      script.addEventListener("load", () => resolve(window.uPlot));
      script.addEventListener("error", () => {
        loading = null;
        reject(new Error("The chart library could not be loaded from chatwire."));
      });
      document.head.append(script);
    });
  }
  return loading;
}

function axisWidth(u, values) {
  const longest = values ? Math.max(...values.map((v) => String(v).length)) : 4;
  return Math.max(40, 16 + longest * 8);
}

/**
 * A bar chart of categories (days, models) in `box`: `labels` name the bars' places, each of
 * `series` ({label, color, values, format}) draws one bar at each. Redrawn at the box's width.
 */
export async function barChart(box, { title, labels, series, height = 220 }) {
  const uPlot = await uPlotLoaded();
  const count = series.length;
  const width = 0.8 / count;
  const plot = h("div", { class: "plot" });
  box.replaceChildren(
    h("h3", {}, title),
    h("p", { class: "legend" }, series.map((s) => h("span", {},
      h("span", { class: "swatch", "data-color": s.color }), s.label))),
    plot,
  );
  for (const swatch of box.querySelectorAll(".swatch")) swatch.style.background = swatch.dataset.color;
  const index = labels.map((_, i) => i);
  const options = {
    width: Math.max(plot.clientWidth, 200),
    height,
    legend: { show: false },
    cursor: { show: false },
    scales: {
      x: { time: false, range: () => [-0.5, labels.length - 0.5] },
      // Bars stand on zero: a scale from the data's minimum would make the least look like none.
      y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] },
    },
    axes: [
      {
        values: (u, splits) => splits.map((i) => (Number.isInteger(i) ? labels[i] ?? "" : "")),
        incrs: [1, 2, 5, 7, 10, 20, 50],
        space: 48,
        grid: { show: false },
      },
      // As wide as its longest label (a cost axis's have many places).
      { values: (u, splits) => splits.map(series[0].format), size: axisWidth },
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color,
        fill: s.color,
        width: 0,
        points: { show: false },
        // Side by side: each series' bars start at their own offset within the place.
        paths: uPlot.paths.bars({
          disp: {
            x0: { unit: 1, values: () => index.map((x) => x - 0.4 + i * width) },
            size: { unit: 1, values: () => [width] },
          },
        }),
      })),
    ],
  };
  const chart = new uPlot(options, [index, ...series.map((s) => s.values)], plot);
  const resized = new ResizeObserver(() => {
    if (!plot.isConnected) return resized.disconnect();
    chart.setSize({ width: Math.max(plot.clientWidth, 200), height });
  });
  resized.observe(plot);
  return chart;
}

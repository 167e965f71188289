// Metrics: counters and histograms, refreshed every few seconds, with a latency chart in SVG.

import { get } from "../api.js";
import { h, mount, errorBox, svg, formatMs } from "../dom.js";

const REFRESH_MS = 3000;
const POINTS = 60;

/** The histogram that best stands for agent latency. */
function latencyKey(histograms) {
  const names = Object.keys(histograms);
  return names.find((name) => /agent/.test(name) && /(latency|duration|_ms)/.test(name))
    || names.find((name) => /(latency|duration)/.test(name)) || names[0];
}

/** `width`: the box's width in CSS pixels, so the drawing is not stretched and its labels keep
 * their shape at any screen width. */
function chart(points, label, width) {
  const height = 180, pad = 32;
  const values = points.map((point) => point.value).filter((value) => value !== null);
  const max = Math.max(1, ...values);
  const x = (index) => pad + (index / Math.max(1, POINTS - 1)) * (width - pad - 8);
  const y = (value) => height - 20 - (value / max) * (height - 40);
  const offset = POINTS - points.length;
  const path = points.map((point, index) => (point.value === null ? null : `${x(index + offset)},${y(point.value)}`)).filter(Boolean);
  return svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": `${label} over time`, preserveAspectRatio: "xMinYMin meet" },
    svg("line", { class: "axis", x1: pad, y1: height - 20, x2: width - 8, y2: height - 20 }),
    svg("line", { class: "axis", x1: pad, y1: 20, x2: pad, y2: height - 20 }),
    svg("text", { x: 2, y: 24 }, formatMs(max)),
    svg("text", { x: 2, y: height - 22 }, "0"),
    svg("text", { x: width - 80, y: height - 4 }, `last ${Math.round((POINTS * REFRESH_MS) / 60000)} min`),
    path.length > 1 ? svg("polyline", { class: "line", points: path.join(" ") }) : null,
    path.length === 1 ? svg("circle", { cx: path[0].split(",")[0], cy: path[0].split(",")[1], r: 3, fill: "currentColor" }) : null);
}

export async function render(main) {
  const summary = h("div", { class: "grid" });
  const chartBox = h("section", { class: "card", id: "latency-chart" });
  const counters = h("section", { class: "card", id: "counters" });
  const histograms = h("section", { class: "card", id: "histograms" });
  const status = h("span", { class: "muted", "aria-live": "polite" });
  mount(main, h("div", { class: "row spread" }, h("h1", {}, "Metrics"), status), summary, h("h2", {}, "Agent latency"), chartBox,
    h("div", { class: "grid spaced" }, counters, histograms));

  const points = [];
  let previous = null;
  let chartKey = null;

  /** Draws the chart at the box's current width (again whenever the box is resized). */
  function drawChart() {
    if (!chartKey) {
      mount(chartBox, h("p", { class: "muted" }, "No latency recorded yet."));
      return;
    }
    const width = Math.max(240, Math.round(chartBox.clientWidth - 32));
    mount(chartBox, h("div", { class: "muted" }, chartKey), chart(points, chartKey, width));
  }
  const resizes = new ResizeObserver(() => drawChart());
  resizes.observe(chartBox);

  async function refresh() {
    let body;
    try {
      body = await get("/v1/metrics/");
    } catch (error) {
      const box = error.status === 404 || error.status === 503
        ? h("div", { class: "notice" }, "Metrics are not available on this node yet (", error.message, ").") : errorBox(error);
      mount(summary, box);
      status.textContent = "";
      return;
    }
    const counterMap = body.counters || {};
    const histogramMap = body.histograms || {};
    const key = latencyKey(histogramMap);
    const current = key ? histogramMap[key] : null;
    if (current) {
      // The mean of the runs that finished since the last poll; null when none did.
      const value = previous && current.count > previous.count
        ? (current.sum - previous.sum) / (current.count - previous.count)
        : previous ? null : current.avg ?? null;
      points.push({ value });
      if (points.length > POINTS) points.shift();
      previous = { count: current.count, sum: current.sum };
    }
    const counterNames = Object.keys(counterMap).sort();
    mount(summary,
      h("div", { class: "card" }, h("div", { class: "muted" }, "Counters"), h("div", { class: "stat" }, counterNames.length)),
      h("div", { class: "card" }, h("div", { class: "muted" }, "Histograms"), h("div", { class: "stat" }, Object.keys(histogramMap).length)),
      current ? h("div", { class: "card" }, h("div", { class: "muted" }, `Average ${key}`), h("div", { class: "stat" }, formatMs(current.avg))) : null);
    chartKey = current ? key : null;
    drawChart();
    mount(counters, h("h3", {}, "Counters"), counterNames.length ? h("table", {}, h("tbody", {}, counterNames.map((name) =>
      h("tr", {}, h("td", { class: "mono" }, name), h("td", { class: "num" }, counterMap[name])))))
      : h("p", { class: "muted" }, "None yet."));
    const histogramNames = Object.keys(histogramMap).sort();
    mount(histograms, h("h3", {}, "Histograms"), histogramNames.length ? h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Name", "Count", "Avg", "Min", "Max"].map((title, index) => h("th", { class: index ? "num" : "" }, title)))),
      h("tbody", {}, histogramNames.map((name) => {
        const hist = histogramMap[name];
        return h("tr", {}, h("td", { class: "mono" }, name), h("td", { class: "num" }, hist.count),
          h("td", { class: "num" }, formatMs(hist.avg)), h("td", { class: "num" }, formatMs(hist.min)), h("td", { class: "num" }, formatMs(hist.max)));
      })))) : h("p", { class: "muted" }, "None yet."));
    status.textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    clearInterval(timer);
    resizes.disconnect();
  };
}

// An invocation's steps on one time axis (a Gantt chart, inline SVG): a row per step, in
// the call graph's order, a bar from its creation to its settling (to now while pending,
// hatched). Durable sleeps are violet; a step whose task was taken more than once (a
// retry after a crash, or a resume after it awaited) says how often after its duration.
"use strict";

const Timeline = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const ROW_H = 26;
  const BAR_H = 14;
  const LABEL_W = 190;
  const AXIS_H = 26;
  const PAD = 10;
  // Room right of the plot for the last bar's label.
  const TAIL = 110;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // Tick spacing in ms: 1, 2 or 5 times a power of ten, for about five ticks.
  function tickStep(span) {
    const rough = span / 5;
    const power = 10 ** Math.floor(Math.log10(Math.max(rough, 1)));
    return [1, 2, 5, 10].map((m) => m * power).find((step) => step >= rough) || power * 10;
  }

  function render(root, options = {}) {
    const { steps } = CallGraph.layout(root, options.collapsed || new Set());
    const now = Clock.now();
    const start = root.created_at;
    const end = Math.max(...steps.map((s) => s.node.settled_at || now), start + 1);
    const width = Math.max(options.width || 900, 520);
    const plot = width - LABEL_W - PAD * 2 - TAIL;
    const x = (ms) => LABEL_W + PAD + ((ms - start) / (end - start)) * plot;
    const height = AXIS_H + steps.length * ROW_H + PAD;
    const svg = el("svg", {
      class: "timeline", width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
      "aria-label": `Timeline of ${root.id}: ${steps.length} steps over ` +
        `${formatDuration(end - start)}`,
    });
    const defs = el("defs");
    const hatch = el("pattern", {
      id: "pending-hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse",
      patternTransform: "rotate(45)",
    });
    hatch.appendChild(el("rect", { width: 6, height: 6, class: "hatch-bg" }));
    hatch.appendChild(el("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "hatch-line" }));
    defs.appendChild(hatch);
    svg.appendChild(defs);

    const step = tickStep(end - start);
    for (let t = 0; t <= end - start; t += step) {
      svg.appendChild(el("line", {
        class: "tick", x1: x(start + t), x2: x(start + t), y1: AXIS_H - 6, y2: height - PAD,
      }));
      svg.appendChild(el("text", {
        class: "tick-label", x: x(start + t), y: AXIS_H - 10, "text-anchor": "middle",
      }, `+${formatDuration(t)}`));
    }

    steps.forEach((item, index) => {
      const node = item.node;
      const y = AXIS_H + index * ROW_H;
      const row = el("g", {
        class: `row state-${node.state} kind-${node.kind}` +
          (node.id === options.selected ? " selected" : ""),
        "data-step": node.id, "data-state": node.state, "data-kind": node.kind,
        tabindex: "0", role: "button",
      });
      const finish = node.settled_at || now;
      const label = `${"  ".repeat(item.depth)}${CallGraph.title(node)}`;
      const took = formatDuration(finish - node.created_at);
      const attempts = node.attempts || 0;
      const what = `${CallGraph.describe(node)}; started +${formatDuration(node.created_at - start)}` +
        `, ${node.state === "pending" ? "running for" : "took"} ${took}` +
        (attempts > 1 ? `; its task was taken ${attempts} times` : "");
      row.setAttribute("aria-label", `${what}: show its detail`);
      row.appendChild(el("title", {}, what));
      row.appendChild(el("rect", { class: "row-band", x: 0, y, width, height: ROW_H }));
      row.appendChild(el("text", { class: "row-label", x: PAD + item.depth * 10, y: y + 17 },
        short(label.trim(), 26 - item.depth)));
      const left = x(node.created_at);
      const bar = el("rect", {
        class: "bar", x: left, y: y + (ROW_H - BAR_H) / 2, rx: 3, height: BAR_H,
        width: Math.max(2, x(finish) - left),
      });
      row.appendChild(bar);
      const after = el("text", { class: "bar-label", x: x(finish) + 5, y: y + 17 });
      const time = el("tspan");
      if (node.state === "pending") markRunning(time, node.created_at);
      else time.textContent = took;
      after.appendChild(time);
      if (attempts > 1) after.appendChild(el("tspan", { class: "retry" }, ` · taken ${attempts} times`));
      row.appendChild(after);
      if (options.onSelect) activateOnKeys(row, () => options.onSelect(node.id));
      svg.appendChild(row);
    });
    return svg;
  }

  return { render };
})();

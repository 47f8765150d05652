// An invocation's steps on one time axis (a Gantt chart, inline SVG): a row per step, in
// the call graph's order, a bar from its creation to its settling (to now while pending,
// hatched). Durable sleeps are violet. A step whose task was taken again says why, as far
// as the server knows (the dashboard's label_attempts): a resume after what it awaited
// settled (a dot on the bar where it happened, ringed when another replica took it), a
// takeover after a lost lease (a diamond), or only a count where the server keeps no
// record. The SDK's retries happen inside one acquisition: no server sees them.
"use strict";

const Timeline = (() => {
  const ROW_H = 26;
  const BAR_H = 14;
  const LABEL_W = 190;
  const AXIS_H = 26;
  const PAD = 10;
  // Room right of the plot for the last bar's label.
  const TAIL = 110;
  const LEGEND_H = 18;
  const MARK_R = 3.5;
  // What each cause of an acquisition is called on its mark.
  const HOW = {
    awaited: "resumed", lease: "taken over after a lost lease", release: "taken after a release",
    continue: "continued after a halt",
  };

  const el = svgElement;

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
    const height = AXIS_H + steps.length * ROW_H + PAD + LEGEND_H;
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
      const attempts = node.attempts || null;
      const told = attempts && attempts.summary ? attempts.summary : "";
      const what = `${CallGraph.describe(node)}; started +${formatDuration(node.created_at - start)}` +
        `, ${node.state === "pending" ? "running for" : "took"} ${took}` +
        (told ? `; ${attempts.detail}` : "");
      if (attempts) {
        row.setAttribute("data-acquired", attempts.acquired);
        row.setAttribute("data-known", attempts.known);
        row.setAttribute("data-resumes", attempts.resumes);
        row.setAttribute("data-takeovers", attempts.takeovers);
        row.setAttribute("data-moves", attempts.moves.length);
      }
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
      for (const mark of (attempts && attempts.marks) || []) {
        const cx = Math.min(Math.max(x(mark.at), left), x(finish));
        const cy = y + ROW_H / 2;
        const cls = `mark cause-${mark.cause}${mark.moved ? " moved" : ""}`;
        const shape = mark.cause === "lease" || mark.cause === "release"
          ? el("rect", { class: cls, x: cx - MARK_R, y: cy - MARK_R, width: MARK_R * 2,
              height: MARK_R * 2, transform: `rotate(45 ${cx} ${cy})` })
          : el("circle", { class: cls, cx, cy, r: MARK_R });
        const by = mark.previous && mark.moved ? `${mark.pid} (was ${mark.previous})` : mark.pid;
        const how = HOW[mark.cause] || "taken";
        shape.appendChild(el("title", {}, `${how} by ${by} at +${formatDuration(mark.at - start)}`));
        row.appendChild(shape);
      }
      const after = el("text", { class: "bar-label", x: x(finish) + 5, y: y + 17 });
      const time = el("tspan");
      if (node.state === "pending") markRunning(time, node.created_at);
      else time.textContent = took;
      after.appendChild(time);
      if (told) after.appendChild(el("tspan", { class: "attempts" }, ` · ${told}`));
      row.appendChild(after);
      if (options.onSelect) activateOnKeys(row, () => options.onSelect(node.id));
      svg.appendChild(row);
    });
    svg.appendChild(el("text", { class: "legend", x: PAD, y: height - 4 },
      "● resumed (ringed: on another replica)   ◆ taken over (a lost lease, a release)   " +
      "· the SDK's retries stay inside one acquisition: no server sees them"));
    return svg;
  }

  return { render };
})();

// The call graph of one invocation as an inline SVG: one lane per group, a box per step,
// an arrow per call. Steps are laid out left to right in the order they were created
// (depth first), so time runs to the right and each lane shows what its group ran.
"use strict";

const CallGraph = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const BOX_W = 156;
  const BOX_H = 54;
  const GAP_X = 30;
  const LANE_H = 78;
  const LABEL_W = 112;
  const PAD = 12;

  function el(name, attrs, text) {
    const node = document.createElementNS(SVG, name);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function short(value, max) {
    const text = typeof value === "string" ? value : JSON.stringify(value);
    if (text === undefined) return "";
    return text.length > max ? text.slice(0, max - 1) + "…" : text;
  }

  function seconds(ms) {
    return ms === null || ms === undefined ? "" : (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + "s";
  }

  // Steps in depth-first order, each with its lane (the group that ran it; a sleep
  // stays in its caller's lane) and its column.
  function layout(root) {
    const steps = [];
    const lanes = [];
    function visit(node, parent) {
      const lane = node.group || (parent ? parent.lane : "?");
      if (!lanes.includes(lane)) lanes.push(lane);
      const step = { node, parent, lane, column: steps.length };
      steps.push(step);
      const children = [...node.children].sort((a, b) => a.created_at - b.created_at);
      for (const child of children) visit(child, step);
    }
    visit(root, null);
    for (const step of steps) {
      step.x = LABEL_W + PAD + step.column * (BOX_W + GAP_X);
      step.y = lanes.indexOf(step.lane) * LANE_H + (LANE_H - BOX_H) / 2;
    }
    return { steps, lanes };
  }

  function title(node) {
    if (node.kind === "sleep") return "durable sleep";
    return `${node.function || node.id}(${node.args.map((a) => short(a, 8)).join(", ")})`;
  }

  function detail(node, now) {
    if (node.state === "pending") {
      const running = seconds(now - node.created_at);
      return node.kind === "sleep" ? `sleeping… ${running}` : `pending… ${running}`;
    }
    const took = seconds(node.settled_at - node.created_at);
    if (node.error) return `${node.state.replace("_", " ")}: ${short(node.error, 12)}`;
    if (node.kind === "sleep") return `slept ${took}`;
    return `= ${short(node.value, 12)}  ${took}`;
  }

  function describe(node) {
    const what = node.kind === "sleep" ? "durable sleep" : `${node.kind} ${title(node)}`;
    const result = node.error ? `, ${node.error}` : node.state === "resolved" && node.kind !== "sleep"
      ? `, result ${short(node.value, 40)}` : "";
    return `${what} in ${node.group || "its caller's group"}: ${node.state}${result}`;
  }

  function render(root, now) {
    const { steps, lanes } = layout(root);
    const width = LABEL_W + PAD * 2 + steps.length * (BOX_W + GAP_X) - GAP_X;
    const height = lanes.length * LANE_H;
    const settled = steps.filter((s) => s.node.state !== "pending").length;
    const svg = el("svg", {
      class: "callgraph", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Call graph of ${root.id}: ${steps.length} steps in ${lanes.length} groups, ` +
        `${settled} settled`,
    });
    const defs = el("defs");
    const marker = el("marker", {
      id: "arrowhead", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7",
      markerHeight: "7", orient: "auto-start-reverse",
    });
    marker.appendChild(el("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }));
    defs.appendChild(marker);
    svg.appendChild(defs);

    lanes.forEach((lane, index) => {
      svg.appendChild(el("rect", {
        class: `lane-band${index % 2 ? " odd" : ""}`, x: 0, y: index * LANE_H, width, height: LANE_H,
      }));
      svg.appendChild(el("text", {
        class: "lane-label", x: PAD, y: index * LANE_H + LANE_H / 2 + 4,
      }, lane));
    });

    for (const step of steps) {
      if (!step.parent) continue;
      const from = step.parent;
      const x1 = from.x + BOX_W;
      const y1 = from.y + BOX_H / 2;
      const x2 = step.x;
      const y2 = step.y + BOX_H / 2;
      const bend = Math.max(20, (x2 - x1) / 2);
      svg.appendChild(el("path", {
        class: `arrow ${step.node.kind}`,
        d: `M ${x1} ${y1} C ${x1 + bend} ${y1}, ${x2 - bend} ${y2}, ${x2 - 2} ${y2}`,
        "marker-end": "url(#arrowhead)",
      }));
    }

    for (const step of steps) {
      const node = step.node;
      const group = el("g", {
        class: `step state-${node.state} kind-${node.kind}`,
        "data-step": node.id, "data-function": node.function || "", "data-state": node.state,
        "data-kind": node.kind, transform: `translate(${step.x} ${step.y})`,
      });
      group.appendChild(el("title", {}, describe(node)));
      group.appendChild(el("rect", { width: BOX_W, height: BOX_H, rx: 8 }));
      group.appendChild(el("text", { x: 10, y: 20, "font-weight": "600" }, short(title(node), 22)));
      group.appendChild(el("text", { x: 10, y: 40, class: "sub" }, detail(node, now)));
      if (node.kind === "detached") {
        group.appendChild(el("text", { x: BOX_W - 8, y: 14, class: "tag", "text-anchor": "end" },
          "DETACHED"));
      }
      svg.appendChild(group);
    }
    return svg;
  }

  return { render, layout };
})();

// An invocation's call graph, three ways, from the one JSON tree the dashboard sends:
// - render: an inline SVG, one lane per group, a box per step, an arrow per call; steps are
//   laid out left to right in the order they were created (depth first), so time runs to
//   the right and each lane shows what its group ran;
// - tree: nested lists whose steps expand and collapse (the SVG hides what the tree folds);
// - (timeline.js draws the same steps on one time axis).
// Every step is focusable; Enter or a click opens its detail (options.onSelect).
"use strict";

const CallGraph = (() => {
  const BOX_W = 156;
  const BOX_H = 54;
  const GAP_X = 30;
  const LANE_H = 78;
  const LABEL_W = 112;
  const PAD = 12;

  const el = svgElement;

  function children(node) {
    return [...node.children].sort((a, b) => a.created_at - b.created_at || (a.id < b.id ? -1 : 1));
  }

  function count(node) {
    return node.children.reduce((total, child) => total + 1 + count(child), 0);
  }

  // Steps in depth-first order (below a collapsed step, none), each with its lane (the group
  // that ran it; a sleep stays in its caller's lane) and its column.
  function layout(root, collapsed = new Set()) {
    const steps = [];
    const lanes = [];
    function visit(node, parent, depth) {
      const lane = node.group || (parent ? parent.lane : "?");
      if (!lanes.includes(lane)) lanes.push(lane);
      const step = { node, parent, lane, depth, column: steps.length };
      steps.push(step);
      if (collapsed.has(node.id)) return;
      for (const child of children(node)) visit(child, step, depth + 1);
    }
    visit(root, null, 0);
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

  // The second line of a step's box; a pending one's age is kept running by the page's ticker.
  function detail(text, node) {
    if (node.state === "pending") {
      markRunning(text, node.created_at, node.kind === "sleep" ? "sleeping… " : "pending… ");
      return;
    }
    const took = formatDuration(node.settled_at - node.created_at);
    if (node.error) text.textContent = `${node.state.replace("_", " ")}: ${short(node.error, 12)}`;
    else if (node.kind === "sleep") text.textContent = `slept ${took}`;
    else text.textContent = `= ${short(node.value, 12)}  ${took}`;
  }

  function describe(node) {
    const what = node.kind === "sleep" ? "durable sleep" : `${node.kind} ${title(node)}`;
    const result = node.error ? `, ${node.error}` : node.state === "resolved" && node.kind !== "sleep"
      ? `, result ${short(node.value, 40)}` : "";
    return `${what} in ${node.group || "its caller's group"}: ${node.state}${result}`;
  }

  function render(root, options = {}) {
    const collapsed = options.collapsed || new Set();
    const { steps, lanes } = layout(root, collapsed);
    const width = LABEL_W + PAD * 2 + steps.length * (BOX_W + GAP_X) - GAP_X;
    const height = lanes.length * LANE_H;
    const settled = steps.filter((s) => s.node.state !== "pending").length;
    const svg = el("svg", {
      class: "callgraph", width, height, viewBox: `0 0 ${width} ${height}`, role: "group",
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
        class: `step state-${node.state} kind-${node.kind}` +
          (node.id === options.selected ? " selected" : ""),
        "data-step": node.id, "data-function": node.function || "", "data-state": node.state,
        "data-kind": node.kind, transform: `translate(${step.x} ${step.y})`,
        tabindex: "0", role: "button", "aria-label": `${describe(node)}: show its detail`,
      });
      group.appendChild(el("title", {}, describe(node)));
      group.appendChild(el("rect", { width: BOX_W, height: BOX_H, rx: 8 }));
      group.appendChild(el("text", { x: 10, y: 20, "font-weight": "600" }, short(title(node), 22)));
      const second = el("text", { x: 10, y: 40, class: "sub" });
      detail(second, node);
      group.appendChild(second);
      if (node.kind === "detached") {
        group.appendChild(el("text", { x: BOX_W - 8, y: 14, class: "tag", "text-anchor": "end" },
          "DETACHED"));
      }
      if (collapsed.has(node.id) && node.children.length) {
        group.appendChild(el("text", { x: BOX_W - 8, y: 48, class: "tag", "text-anchor": "end" },
          `+${count(node)} folded`));
      }
      if (options.onSelect) activateOnKeys(group, () => options.onSelect(node.id));
      svg.appendChild(group);
    }
    return svg;
  }

  // The same steps as nested lists: a toggle per step with children, a button per step.
  function tree(root, options = {}) {
    const collapsed = options.collapsed || new Set();
    function item(node) {
      const li = document.createElement("li");
      li.dataset.step = node.id;
      li.dataset.state = node.state;
      const line = element("div", { className: "tree-line" });
      if (node.children.length) {
        const open = !collapsed.has(node.id);
        const toggle = button(open ? "▾" : "▸", `${open ? "Collapse" : "Expand"} ${node.id}`,
          () => options.onToggle(node.id), "toggle");
        toggle.setAttribute("aria-expanded", String(open));
        line.appendChild(toggle);
      } else {
        line.appendChild(element("span", { className: "toggle-space", "aria-hidden": "true" }));
      }
      const pick = button(title(node), `Show the detail of ${node.id}`,
        () => options.onSelect(node.id), "link step-link");
      pick.dataset.step = node.id;
      line.append(pick, chip(node.state));
      if (node.kind === "sleep" || node.kind === "detached") {
        line.appendChild(element("span", { className: `chip kind-${node.kind}` }, node.kind));
      }
      line.appendChild(element("span", { className: "muted group" }, node.group || ""));
      const took = element("span", { className: "num muted" });
      if (node.state === "pending") markRunning(took, node.created_at);
      else took.textContent = formatDuration(node.settled_at - node.created_at);
      line.appendChild(took);
      li.appendChild(line);
      if (node.children.length && !collapsed.has(node.id)) {
        const list = element("ul", { role: "group" });
        for (const child of children(node)) list.appendChild(item(child));
        li.appendChild(list);
      }
      return li;
    }
    const top = element("ul", { className: "tree", "aria-label": `Steps of ${root.id}` });
    top.appendChild(item(root));
    return top;
  }

  return { render, tree, layout, title, describe, children };
})();

// The dashboard page: a live view of the supervisor's replicas and the server's invocations
// (server-sent events from /api/events), and buttons that call the dashboard's JSON API.
// It first draws what the dashboard knows at once (the snapshot the index embeds, or
// /api/snapshot), then follows the feed.
"use strict";

const view = {
  topology: null,
  status: null,
  invocations: [],
  selected: null,
  graph: null,
  graphView: "graph",
  collapsed: new Set(),
  graphTimer: null,
  logName: null,
  logTimer: null,
  events: null,
};

// -- signing in ------------------------------------------------------------------

function showLogin() {
  $("#login").hidden = false;
  $("#login-token").focus();
}

$("#login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("/api/session", { method: "POST", body: { token: $("#login-token").value } });
  } catch (error) {
    $("#login-error").textContent = error.message;
    return;
  }
  $("#login").hidden = true;
  $("#login-error").textContent = "";
  start();
});

// -- processes -------------------------------------------------------------------

async function replicaAction(name, action) {
  try {
    await api(`/api/replicas/${encodeURIComponent(name)}/${action}`, { method: "POST" });
    toast(`${action}: ${name} done`);
  } catch (error) {
    toast(`${action} ${name}: ${error.message}`, true);
  }
}

function replicaRow(replica) {
  const row = document.createElement("tr");
  row.dataset.replica = replica.name;
  for (const key of ["name", "group", "pid", "state", "uptime", "restarts"]) {
    const td = cell(row, "", ["uptime", "restarts", "pid"].includes(key) ? "num" : "");
    td.dataset.field = key;
  }
  row.querySelector('[data-field="name"]').classList.add("mono");
  const actions = document.createElement("td");
  const box = document.createElement("div");
  box.className = "actions";
  const name = replica.name;
  box.append(
    button("Kill", `Kill ${name}`, () => replicaAction(name, "kill"), "danger"),
    button("Start", `Start ${name}`, () => replicaAction(name, "start")),
    button("Restart", `Restart ${name}`, () => replicaAction(name, "restart"), "secondary"),
    button("Logs", `Show the log of ${name}`, () => showLog(name), "secondary"),
  );
  actions.appendChild(box);
  row.appendChild(actions);
  return row;
}

function renderStatus(status) {
  view.status = status;
  const where = [`server ${status.server_url}`];
  if (status.gateway_url) where.push(`gateway ${status.gateway_url}`);
  where.push(`run dir ${status.run_dir}`);
  $("#where").textContent = where.join(" · ");
  const body = $("#replicas tbody");
  const rows = new Map([...body.rows].map((row) => [row.dataset.replica, row]));
  status.nodes.forEach((replica, index) => {
    let row = rows.get(replica.name);
    if (!row) row = replicaRow(replica);
    if (body.rows[index] !== row) body.insertBefore(row, body.rows[index] || null);
    rows.delete(replica.name);
    const up = replica.state === "running" || replica.state === "starting";
    row.dataset.state = replica.state;
    const set = (field, text) => { row.querySelector(`[data-field="${field}"]`).textContent = text; };
    set("name", replica.name);
    set("group", replica.group || "-");
    set("pid", replica.pid || "-");
    set("uptime", uptime(replica.uptime));
    set("restarts", String(replica.restarts));
    const state = row.querySelector('[data-field="state"]');
    const label = replica.exit_code !== null && !up ? `${replica.state} (${replica.exit_code})`
      : replica.state;
    state.replaceChildren(chip(replica.state, label));
    const [kill, startButton] = row.querySelectorAll("button");
    kill.disabled = !up;
    startButton.disabled = up;
  });
  for (const row of rows.values()) row.remove();
}

// -- flows -------------------------------------------------------------------------

function renderFlows(topology) {
  const list = $("#flow-list");
  list.replaceChildren();
  for (const flow of topology.flows) {
    const card = document.createElement("div");
    card.className = "flow";
    card.dataset.flow = flow.name;
    const name = document.createElement("h3");
    name.textContent = flow.name;
    const idInput = document.createElement("input");
    idInput.placeholder = "invocation id (optional)";
    idInput.setAttribute("aria-label", `Invocation id for ${flow.name} (optional)`);
    idInput.id = `id-${flow.name}`;
    const call = button("Call", `Call ${flow.name}`, () => callFlow(flow.name, idInput, call));
    const summary = document.createElement("p");
    summary.textContent = `${flow.summary} (nodes ${flow.nodes.join(" → ")})`;
    card.append(name, idInput, call, summary);
    list.appendChild(card);
  }
}

async function callFlow(name, idInput, callButton) {
  callButton.disabled = true;
  try {
    const body = idInput.value.trim() ? { id: idInput.value.trim() } : {};
    const { status, data } = await api(`/api/flows/${name}`, { method: "POST", body });
    selectInvocation(data.id);
    toast(status === 200 ? `${data.id}: ${short(data.result)}` : `${data.id} is running`);
  } catch (error) {
    toast(`${name}: ${error.message}`, true);
  } finally {
    callButton.disabled = false;
  }
}

// -- invocations -------------------------------------------------------------------

function renderInvocations(data) {
  view.invocations = data.invocations;
  $("#invocations-error").textContent = data.error ? `The server is unreachable: ${data.error}` : "";
  const known = new Set(data.invocations.map((item) => item.id));
  const failed = data.failed_calls.filter((item) => !known.has(item.id)).map((item) => ({
    id: item.id, flow: item.flow, state: "call-failed", error: item.error,
  }));
  const body = $("#invocations tbody");
  const focused = document.activeElement && document.activeElement.dataset.invocation;
  body.replaceChildren();
  for (const item of [...failed, ...data.invocations]) {
    const row = document.createElement("tr");
    row.dataset.invocation = item.id;
    row.dataset.state = item.state;
    if (item.id === view.selected) row.classList.add("selected");
    const first = document.createElement("td");
    const pick = button(item.id, `Show the call graph of ${item.id}`, () => {
      selectInvocation(item.id);
      if (item.state !== "call-failed") Promises.open(item.id);
    }, "link");
    pick.dataset.invocation = item.id;
    first.appendChild(pick);
    row.appendChild(first);
    cell(row, item.flow);
    const state = document.createElement("td");
    state.appendChild(chip(item.state, item.state.replace("-", " ")));
    row.appendChild(state);
    cell(row, item.error ? short(item.error) : short(item.result, 24), "mono result");
    const took = cell(row, "", "num duration");
    if (item.state === "call-failed") took.textContent = "-";
    else if (item.state === "pending") markRunning(took, item.created_at);
    else took.textContent = durationOf(item);
    body.appendChild(row);
    if (item.id === focused) pick.focus();
  }
  $("#no-invocations").hidden = body.rows.length > 0;
  if (view.selected && known.has(view.selected)) refreshGraph();
}

// -- the call graph ------------------------------------------------------------------

function selectInvocation(id) {
  view.selected = id;
  $("#graph-id").textContent = id;
  for (const row of $("#invocations tbody").rows) {
    row.classList.toggle("selected", row.dataset.invocation === id);
  }
  refreshGraph();
}

async function refreshGraph() {
  const id = view.selected;
  clearTimeout(view.graphTimer);
  if (!id) return;
  let graph;
  const tasks = view.graphView === "timeline" ? "?tasks=1" : "";
  try {
    ({ data: graph } = await api(`/api/invocations/${encodeURIComponent(id)}/graph${tasks}`));
  } catch (error) {
    if (id === view.selected) {
      const note = document.createElement("p");
      note.className = "muted";
      note.textContent = `${id}: ${error.message}`;
      $("#graph").replaceChildren(note);
      view.graphTimer = setTimeout(refreshGraph, 1000);
    }
    return;
  }
  if (id !== view.selected) return;
  view.graph = graph;
  drawGraph();
  const pending = JSON.stringify(graph).includes('"state":"pending"');
  if (pending) view.graphTimer = setTimeout(refreshGraph, 700);
}

// The selected invocation as a graph, a tree or a timeline; focus stays where it was.
function drawGraph() {
  const graph = view.graph;
  if (!graph) return;
  const box = $("#graph");
  const focused = document.activeElement;
  const focusedStep = focused && box.contains(focused) ? focused.dataset.step : null;
  const focusedToggle = focused && focused.classList.contains("toggle")
    ? focused.closest("li").dataset.step : null;
  const options = {
    collapsed: view.collapsed,
    selected: Promises.current(),
    onSelect: (stepId) => Promises.open(stepId),
    onToggle: (stepId) => {
      if (view.collapsed.has(stepId)) view.collapsed.delete(stepId);
      else view.collapsed.add(stepId);
      drawGraph();
    },
    width: box.clientWidth - 4,
  };
  const drawn = view.graphView === "tree" ? CallGraph.tree(graph, options)
    : view.graphView === "timeline" ? Timeline.render(graph, options)
      : CallGraph.render(graph, options);
  box.replaceChildren(drawn);
  if (focusedToggle) {
    const toggle = box.querySelector(`li[data-step="${CSS.escape(focusedToggle)}"] .toggle`);
    if (toggle) toggle.focus();
  } else if (focusedStep) {
    const step = box.querySelector(`[data-step="${CSS.escape(focusedStep)}"]`);
    if (step) step.focus();
  }
}

function chooseGraphView(name) {
  view.graphView = name;
  window.addEventListener("promise-opened", () => drawGraph());

for (const tab of document.querySelectorAll("#graph-views button")) {
    tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
  }
  if (name === "timeline") refreshGraph();
  else drawGraph();
}

window.addEventListener("promise-opened", () => drawGraph());

for (const tab of document.querySelectorAll("#graph-views button")) {
  tab.addEventListener("click", () => chooseGraphView(tab.dataset.view));
}

// -- logs --------------------------------------------------------------------------

async function showLog(name) {
  view.logName = name;
  $("#log-name").textContent = name;
  clearTimeout(view.logTimer);
  await refreshLog();
  $("#logs-title").scrollIntoView({ block: "nearest" });
}

async function refreshLog() {
  const name = view.logName;
  const pre = $("#log");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  try {
    const { data } = await api(`/api/logs/${encodeURIComponent(name)}?lines=300`);
    if (name !== view.logName) return;
    pre.textContent = data.lines.join("\n") || "(empty)";
  } catch (error) {
    pre.textContent = error.message;
  }
  if (atBottom) pre.scrollTop = pre.scrollHeight;
  view.logTimer = setTimeout(refreshLog, 1000);
}

// -- the crash demo ----------------------------------------------------------------

function renderDemoChoices(topology) {
  const flowSelect = $("#demo-flow");
  flowSelect.replaceChildren(...topology.flows.map((flow) => new Option(flow.name, flow.name)));
  const victims = () => {
    const flow = topology.flows.find((f) => f.name === flowSelect.value);
    $("#demo-victim").replaceChildren(...flow.victims.map(
      (victim) => new Option(victim, victim, false, victim === flow.default_victim)));
  };
  flowSelect.addEventListener("change", victims);
  victims();
}

function renderDemo(demo) {
  $("#demo-state").textContent = demo.state === "idle" ? "" : demo.state;
  $("#demo-state").className = `chip state-${demo.state}`;
  $("#demo-run").disabled = demo.state === "running";
  $("#demo-stop").disabled = demo.state !== "running";
  renderDemoReplicas(demo.replicas);
  const pre = $("#demo-output");
  const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 8;
  pre.textContent = demo.lines.join("\n");
  if (atBottom) pre.scrollTop = pre.scrollHeight;
}

// The demo's own system, while it runs: the killed replica goes down and comes back here.
function renderDemoReplicas(replicas) {
  const table = $("#demo-replicas");
  table.hidden = replicas.length === 0;
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const replica of replicas) {
    const row = document.createElement("tr");
    row.dataset.replica = replica.name;
    row.dataset.state = replica.state;
    cell(row, replica.name, "mono");
    cell(row, replica.pid || "-", "num");
    cell(row, "").appendChild(chip(replica.state));
    cell(row, String(replica.restarts), "num");
    body.appendChild(row);
  }
}

$("#demo-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    flow: $("#demo-flow").value,
    victim: $("#demo-victim").value,
    delay: Number($("#demo-delay").value),
  };
  try {
    await api("/api/demo", { method: "POST", body });
    toast(`crash demo of ${body.flow} started: ${body.victim} dies mid-flow`);
  } catch (error) {
    toast(`crash demo: ${error.message}`, true);
  }
});

$("#demo-stop").addEventListener("click", async () => {
  try {
    await api("/api/demo/stop", { method: "POST" });
  } catch (error) {
    toast(`crash demo: ${error.message}`, true);
  }
});

// -- the live feed -------------------------------------------------------------------

function connect() {
  if (view.events) view.events.close();
  const events = new EventSource("/api/events");
  view.events = events;
  const live = $("#live");
  const on = (name, render) => events.addEventListener(name, (event) => {
    render(JSON.parse(event.data));
  });
  events.addEventListener("open", () => {
    live.dataset.live = "live";
    live.textContent = "live";
  });
  events.addEventListener("error", () => {
    live.dataset.live = "down";
    live.textContent = "reconnecting…";
  });
  on("status", renderStatus);
  on("invocations", renderInvocations);
  on("demo", renderDemo);
}

// What the dashboard knew when it served the page, else what it knows now.
async function firstSnapshot() {
  const slot = document.getElementById("first-snapshot");
  if (slot) {
    slot.remove();
    return JSON.parse(slot.textContent);
  }
  return (await api("/api/snapshot")).data;
}

async function start() {
  const snapshot = await firstSnapshot();
  Clock.sync(snapshot.now);
  view.topology = snapshot.topology;
  renderFlows(snapshot.topology);
  renderDemoChoices(snapshot.topology);
  renderStatus(snapshot.status);
  renderInvocations(snapshot.invocations);
  Promises.init();
  Overview.refresh();
  setInterval(tickRunning, 250);
  connect();
}

// `asyncrpc ui` opens /#token=SECRET: the secret leaves the address at once (so neither the
// history nor a bookmark keeps it) and is traded for a session cookie.
async function signInFromAddress() {
  const token = new URLSearchParams(location.hash.slice(1)).get("token");
  if (token === null) return;
  history.replaceState(null, "", location.pathname + location.search);
  try {
    await api("/api/session", { method: "POST", body: { token } });
  } catch (error) {
    $("#login-error").textContent = `the address's token: ${error.message}`;
  }
}

(async () => {
  await signInFromAddress();
  const response = await fetch("/api/session");
  const session = await response.json();
  if (!session.authorized) {
    showLogin();
    return;
  }
  start();
})();

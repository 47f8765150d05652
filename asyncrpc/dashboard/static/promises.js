// The promise browser (search by id pattern, state and role, newest first, page by page; the
// address keeps the query; the first page follows new promises every few seconds) and the detail panel (one promise decoded, its task, why it waits;
// its address is #/promises/<id>).
"use strict";

const Promises = (() => {
  const state = {
    query: { q: "", state: "", role: "" },
    cursors: [""], // the cursor of each page shown so far; the last is the current page's
    next: null,
    detailId: null,
    detailTimer: null,
    listTimer: null,
  };
  const PLACEHOLDER = "Choose a promise, an invocation or a step to see it here.";

  // -- the browser -------------------------------------------------------------------------

  function readAddress() {
    const params = new URLSearchParams(location.search);
    state.query = { q: params.get("q") || "", state: params.get("state") || "",
      role: params.get("role") || "" };
    $("#promise-q").value = state.query.q;
    $("#promise-state").value = state.query.state;
    $("#promise-role").value = state.query.role;
  }

  function writeAddress() {
    const params = new URLSearchParams();
    for (const [key, value] of Object.entries(state.query)) if (value) params.set(key, value);
    const search = params.toString();
    history.replaceState(null, "", `${location.pathname}${search ? "?" + search : ""}${location.hash}`);
  }

  async function search(event) {
    if (event) event.preventDefault();
    state.query = { q: $("#promise-q").value.trim(), state: $("#promise-state").value,
      role: $("#promise-role").value };
    writeAddress();
    state.cursors = [""];
    await load();
  }

  async function load() {
    clearTimeout(state.listTimer);
    const params = new URLSearchParams({ limit: "20" });
    for (const [key, value] of Object.entries(state.query)) if (value) params.set(key, value);
    const cursor = state.cursors[state.cursors.length - 1];
    if (cursor) params.set("cursor", cursor);
    const note = $("#promise-note");
    let page;
    try {
      ({ data: page } = await api(`/api/promises?${params}`));
    } catch (error) {
      note.textContent = error.message;
      note.classList.add("error");
      return;
    }
    note.classList.remove("error");
    state.next = page.cursor;
    const body = $("#promise-list tbody");
    const focused = body.contains(document.activeElement)
      ? document.activeElement.closest("tr").dataset.promise : null;
    body.replaceChildren();
    for (const promise of page.promises) body.appendChild(row(promise));
    if (focused) {
      const again = body.querySelector(`tr[data-promise="${CSS.escape(focused)}"] button`);
      if (again) again.focus();
    }
    if (state.cursors.length === 1) state.listTimer = setTimeout(load, 3000);
    const first = (state.cursors.length - 1) * 20;
    note.textContent = page.matched === 0 ? "No promise matches."
      : `${first + 1} to ${first + page.promises.length} of ${page.matched}, newest first`;
    $("#promise-newer").disabled = state.cursors.length <= 1;
    $("#promise-older").disabled = !page.cursor;
    $("#promise-list").dataset.loaded = String(Date.now());
  }

  function row(promise) {
    const tr = document.createElement("tr");
    tr.dataset.promise = promise.id;
    tr.dataset.state = promise.state;
    tr.dataset.role = promise.role;
    if (promise.id === state.detailId) tr.classList.add("selected");
    const first = document.createElement("td");
    first.appendChild(button(promise.id, `Show the detail of ${promise.id}`, () => open(promise.id),
      "link"));
    tr.appendChild(first);
    cell(tr, promise.function || (promise.kind === "sleep" ? "(sleep)" : "-"), "mono");
    cell(tr, promise.role);
    cell(tr, "").appendChild(chip(promise.state));
    cell(tr, clockTime(promise.created_at).slice(0, 8), "num").title = fullTime(promise.created_at);
    const took = cell(tr, "", "num");
    if (promise.state === "pending") markRunning(took, promise.created_at);
    else took.textContent = durationOf(promise);
    return tr;
  }

  async function older() {
    if (!state.next) return;
    state.cursors.push(state.next);
    await load();
    $("#promise-list").focus();
  }

  async function newer() {
    if (state.cursors.length <= 1) return;
    state.cursors.pop();
    await load();
  }

  // -- the detail panel -------------------------------------------------------------------

  function pretty(value) {
    if (value === null || value === undefined) return "—";
    return typeof value === "string" ? JSON.stringify(value) : JSON.stringify(value, null, 2);
  }

  function field(list, name, content) {
    const dt = element("dt", {}, name);
    const dd = element("dd", { "data-field": name });
    if (content instanceof Node) dd.appendChild(content);
    else dd.textContent = content;
    list.append(dt, dd);
    return dd;
  }

  function link(id, onClick = () => open(id)) {
    const b = button(id, `Show the detail of ${id}`, onClick, "link");
    return b;
  }

  function open(id, { push = true } = {}) {
    state.detailId = id;
    if (push) {
      const hash = `#/promises/${encodeURIComponent(id)}`;
      if (location.hash !== hash) history.pushState(null, "", `${location.pathname}${location.search}${hash}`);
    }
    for (const tr of document.querySelectorAll("#promise-list tbody tr")) {
      tr.classList.toggle("selected", tr.dataset.promise === id);
    }
    window.dispatchEvent(new CustomEvent("promise-opened", { detail: id }));
    refreshDetail(true);
  }

  async function refreshDetail(focus = false) {
    const id = state.detailId;
    clearTimeout(state.detailTimer);
    if (!id) return;
    const box = $("#detail-body");
    let detail;
    try {
      ({ data: detail } = await api(`/api/promises/${encodeURIComponent(id)}`));
    } catch (error) {
      if (id !== state.detailId) return;
      $("#detail-id").textContent = id;
      box.replaceChildren(element("p", { className: "error", role: "alert" }, error.message));
      return;
    }
    if (id !== state.detailId) return;
    renderDetail(detail);
    if (focus) {
      $("#detail").scrollIntoView({ block: "nearest" });
      $("#detail-title").focus({ preventScroll: true });
    }
    if (detail.promise.state === "pending") state.detailTimer = setTimeout(refreshDetail, 1000);
  }

  function renderDetail(detail) {
    const p = detail.promise;
    $("#detail-id").textContent = p.id;
    const box = $("#detail-body");
    box.dataset.state = p.state;
    const list = element("dl", { className: "fields" });
    field(list, "id", element("span", { className: "mono" }, p.id));
    field(list, "state", chip(p.state));
    field(list, "function", p.function || (p.kind === "sleep" ? "durable sleep" : "—"));
    field(list, "role", `${p.role} (${p.kind})`);
    field(list, "group", p.group || "— (runs in its caller's process)");
    if (p.invocation) {
      const open = p.invocation === p.id ? element("span", {}, "this promise")
        : link(p.invocation);
      field(list, "invocation", open);
    }
    if (p.parent && p.parent !== p.id) field(list, "parent", link(p.parent));
    field(list, "created", fullTime(p.created_at));
    field(list, "settled", p.settled_at ? fullTime(p.settled_at) : "not yet");
    const took = field(list, "duration", "");
    if (p.state === "pending") markRunning(took, p.created_at, "", " so far");
    else took.textContent = durationOf(p);
    field(list, "timeout", p.timeout_at ? fullTime(p.timeout_at) : "—");
    if (detail.task) {
      const t = detail.task;
      const held = t.holder ? ` · held by ${t.holder}` : t.pid ? ` · process ${t.pid}` : "";
      field(list, "task", `${t.state} · taken ${t.version} time(s)${held}`);
    }
    const parts = [list];
    if (detail.wait) parts.push(waitBlock(detail.wait));
    parts.push(element("h3", {}, "param"));
    parts.push(element("pre", { className: "json", "data-field": "param", tabindex: "0" },
      pretty(p.param)));
    if (p.error) {
      parts.push(element("h3", {}, "error"));
      parts.push(element("p", { className: "error", "data-field": "error" }, p.error));
    }
    if (p.state !== "pending") {
      parts.push(element("h3", {}, p.error ? "error value" : "value"));
      parts.push(element("pre", { className: "json", "data-field": "value", tabindex: "0" },
        pretty(p.value)));
    }
    if (detail.children.length) {
      parts.push(element("h3", {}, "steps it started"));
      const ul = element("ul", { className: "children" });
      for (const child of detail.children) {
        const li = element("li");
        li.append(link(child.id), " ", chip(child.state), " ",
          element("span", { className: "muted" }, child.function || ""));
        ul.appendChild(li);
      }
      parts.push(ul);
    }
    parts.push(element("h3", {}, "tags"));
    const tags = element("table", { className: "table tags" });
    for (const [key, value] of Object.entries(p.tags).sort()) {
      const tr = document.createElement("tr");
      cell(tr, key, "mono");
      cell(tr, value, "mono");
      tags.appendChild(tr);
    }
    parts.push(tags);
    $("#detail-body").replaceChildren(...parts);
  }

  function waitBlock(wait) {
    const block = element("div", { className: `wait wait-${wait.kind}`, "data-wait": wait.kind,
      role: "note" });
    block.appendChild(element("h3", {}, "Why it waits"));
    block.appendChild(element("p", { className: "wait-summary" }, wait.summary));
    if (wait.until) {
      const left = element("p", { className: "muted" });
      left.textContent = `due at ${fullTime(wait.until)}`;
      block.appendChild(left);
    }
    if (wait.awaits.length) {
      const p = element("p", {}, "awaits: ");
      wait.awaits.forEach((id, index) => {
        if (index) p.append(", ");
        p.appendChild(link(id));
      });
      block.appendChild(p);
    }
    if (wait.holder) block.appendChild(element("p", {}, `its task is held by ${wait.holder}`));
    return block;
  }

  function close() {
    state.detailId = null;
    clearTimeout(state.detailTimer);
    $("#detail-id").textContent = "";
    $("#detail-body").replaceChildren(element("p", { className: "muted" }, PLACEHOLDER));
    delete $("#detail-body").dataset.state;
    window.dispatchEvent(new CustomEvent("promise-opened", { detail: null }));
    if (location.hash.startsWith("#/promises/")) {
      history.pushState(null, "", `${location.pathname}${location.search}`);
    }
  }

  function fromAddress() {
    const match = location.hash.match(/^#\/promises\/(.+)$/);
    if (match) open(decodeURIComponent(match[1]), { push: false });
  }

  function init() {
    readAddress();
    $("#promise-form").addEventListener("submit", search);
    $("#promise-state").addEventListener("change", () => search());
    $("#promise-role").addEventListener("change", () => search());
    $("#promise-older").addEventListener("click", older);
    $("#promise-newer").addEventListener("click", newer);
    $("#detail-close").addEventListener("click", close);
    window.addEventListener("hashchange", fromAddress);
    window.addEventListener("popstate", fromAddress);
    load();
    fromAddress();
  }

  return { init, open, load, refreshDetail, current: () => state.detailId };
})();

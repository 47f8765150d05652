// What every script of the page shares: the API, small DOM helpers, and the one clock and
// rule every duration on the page is measured by.
"use strict";

const $ = (selector) => document.querySelector(selector);

async function api(path, options = {}) {
  const init = { method: options.method || "GET", headers: {} };
  if (options.body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body);
  }
  const response = await fetch(path, init);
  if (response.status === 401 && path !== "/api/session") {
    showLogin();
    throw new Error("the dashboard wants the token");
  }
  const data = response.status === 204 ? {} : await response.json();
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return { status: response.status, data };
}

function element(name, attrs = {}, text) {
  const node = document.createElement(name);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "className") node.className = value;
    else node.setAttribute(key, value);
  }
  if (text !== undefined) node.textContent = text;
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

// An SVG element (the graph, the timeline and the overview's chart draw with these).
function svgElement(name, attrs, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, aria, onClick, kind = "") {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  b.setAttribute("aria-label", aria);
  if (kind) b.className = kind;
  b.addEventListener("click", onClick);
  return b;
}

function cell(row, text, className = "") {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.appendChild(td);
  return td;
}

function chip(state, text = state) {
  const span = document.createElement("span");
  span.className = `chip state-${state}`;
  span.textContent = text.replace("_", " ");
  return span;
}

function short(value, max = 40) {
  const text = value === undefined ? "" : typeof value === "string" ? value : JSON.stringify(value);
  return text.length > max ? text.slice(0, max - 1) + "…" : text;
}

function uptime(seconds) {
  if (seconds === null || seconds === undefined) return "-";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  if (h) return `${h}h ${String(m).padStart(2, "0")}m`;
  if (m) return `${m}m ${String(s).padStart(2, "0")}s`;
  return `${s}s`;
}

// One clock: the dashboard's (its snapshot says what time it is there), so a pending step
// reads the same age wherever it is shown, whatever the browser's clock says.
// Running durations are all read at the ticker's last tick (`shown`), so two places showing
// one pending step never differ, even between ticks.
const Clock = {
  offset: 0,
  shown: null,
  sync(serverNow) {
    if (typeof serverNow === "number") this.offset = serverNow - Date.now();
    if (this.shown === null) this.shown = this.now();
  },
  now() { return Date.now() + this.offset; },
  tick() { this.shown = this.now(); return this.shown; },
};

// One rule: seconds, two decimals below ten seconds, one above, minutes past two minutes.
function formatDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "-";
  const s = Math.max(0, ms) / 1000;
  if (s >= 120) return `${Math.floor(s / 60)}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${s.toFixed(s < 10 ? 2 : 1)}s`;
}

// How long a promise took, or has been running (then it is marked, so the ticker updates it).
function durationOf(item) {
  if (!item.created_at) return "-";
  return formatDuration((item.settled_at || Clock.now()) - item.created_at);
}

// An element showing a running duration: `data-since` (ms) and a text before and after it.
function markRunning(node, since, before = "", after = "") {
  node.dataset.since = String(since);
  node.dataset.before = before;
  node.dataset.after = after;
  node.textContent = `${before}${formatDuration((Clock.shown ?? Clock.tick()) - since)}${after}`;
}

function tickRunning() {
  const now = Clock.tick();
  for (const node of document.querySelectorAll("[data-since]")) {
    const since = Number(node.dataset.since);
    node.textContent = `${node.dataset.before}${formatDuration(now - since)}${node.dataset.after}`;
  }
}

function clockTime(ms) {
  if (!ms) return "-";
  const date = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.` +
    pad(date.getMilliseconds(), 3);
}

function fullTime(ms) {
  if (!ms) return "-";
  const date = new Date(ms);
  const day = `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-` +
    String(date.getDate()).padStart(2, "0");
  return `${day} ${clockTime(ms)}`;
}

let toastTimer = null;
function toast(message, bad = false) {
  const box = $("#toast");
  box.textContent = message;
  box.classList.toggle("bad", bad);
  box.classList.add("shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => box.classList.remove("shown"), bad ? 7000 : 3500);
}

// Enter or Space on an element that is not a button does what a click does.
function activateOnKeys(node, action) {
  node.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      action();
    }
  });
  node.addEventListener("click", action);
}

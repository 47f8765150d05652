// The overview: promises by state, invocations per second over the last minutes (an SVG bar
// chart), the recent errors with their messages, and the schedules (id, cron, next and last
// run, the promise each run creates). Read every few seconds.
"use strict";

const Overview = (() => {
  const STATES = ["pending", "resolved", "rejected", "rejected_canceled", "rejected_timedout"];
  let timer = null;

  const el = svgElement;

  function chart(data) {
    const width = 360;
    const height = 90;
    const base = height - 16;
    const rate = data.rate;
    const top = Math.max(...rate, 0.1);
    const bar = width / rate.length;
    const total = rate.reduce((sum, value) => sum + value * data.rate_bucket, 0);
    const minutes = data.rate_window / 60;
    const svg = el("svg", {
      class: "rate", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `Invocations per second over the last ${minutes} minutes: ${total} started, ` +
        `at most ${top.toFixed(1)} per second`,
    });
    svg.appendChild(el("line", { class: "axis", x1: 0, x2: width, y1: base, y2: base }));
    rate.forEach((value, index) => {
      if (!value) return;
      const h = Math.max(2, (value / top) * (base - 12));
      const rect = el("rect", {
        class: "rate-bar", x: index * bar + 1, width: Math.max(1, bar - 2), y: base - h, height: h,
      });
      const ago = (rate.length - index) * data.rate_bucket;
      rect.appendChild(el("title", {}, `${value.toFixed(2)}/s, ${ago}s ago`));
      svg.appendChild(rect);
    });
    svg.appendChild(el("text", { class: "chart-label", x: 0, y: height - 2 }, `${minutes} min ago`));
    svg.appendChild(el("text", { class: "chart-label", x: width, y: height - 2, "text-anchor": "end" },
      "now"));
    svg.appendChild(el("text", { class: "chart-label", x: 2, y: 10 }, `${top.toFixed(1)}/s`));
    return svg;
  }

  function render(data) {
    Clock.sync(data.now);
    const counts = $("#overview-counts");
    counts.replaceChildren();
    for (const name of STATES) {
      const box = element("div", { className: `count state-${name}`, "data-count": name });
      box.append(element("strong", {}, String(data.counts[name] || 0)),
        element("span", {}, name.replace("_", " ")));
      counts.appendChild(box);
    }
    $("#overview-total").textContent = `${data.total} promises`;
    $("#overview-rate").replaceChildren(chart(data));
    const errors = $("#overview-errors");
    errors.replaceChildren();
    for (const promise of data.errors) {
      const li = element("li", { "data-promise": promise.id });
      li.append(button(promise.id, `Show the detail of ${promise.id}`,
        () => Promises.open(promise.id), "link"));
      li.append(" ", element("span", { className: "error" }, short(promise.error, 90)));
      li.append(" ", element("span", { className: "muted" }, clockTime(promise.settled_at)));
      errors.appendChild(li);
    }
    $("#no-errors").hidden = data.errors.length > 0;
    schedules(data.schedules || [], data.schedules_error);
  }

  function schedules(list, why) {
    const body = $("#overview-schedules tbody");
    body.replaceChildren();
    for (const schedule of list) {
      const row = element("tr", { "data-schedule": schedule.id });
      const creates = schedule.group ? `${schedule.promise_id} → ${schedule.group}` : schedule.promise_id;
      row.append(
        element("td", { "data-field": "id" }, schedule.id),
        element("td", { "data-field": "cron" }, schedule.cron),
        element("td", { "data-field": "next_run", title: new Date(schedule.next_run_at).toISOString() },
          dayTime(schedule.next_run_at)),
        element("td", { "data-field": "last_run" }, schedule.last_run_at ? dayTime(schedule.last_run_at) : "never"),
        element("td", { "data-field": "creates" }, short(creates, 60)),
      );
      body.appendChild(row);
    }
    $("#overview-schedules").hidden = list.length === 0;
    $("#no-schedules").hidden = list.length > 0 || Boolean(why);
    $("#schedules-error").textContent = why ? `Schedules unknown: ${why}` : "";
  }

  // A run's time: the clock time, with the date when it is not today.
  function dayTime(ms) {
    const date = new Date(ms);
    const today = new Date(Clock.now()).toDateString() === date.toDateString();
    const pad = (n) => String(n).padStart(2, "0");
    const day = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
    return today ? clockTime(ms).slice(0, 8) : `${day} ${clockTime(ms).slice(0, 8)}`;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const { data } = await api("/api/overview");
      render(data);
      $("#overview-error").textContent = "";
    } catch (error) {
      $("#overview-error").textContent = error.message;
    }
    timer = setTimeout(refresh, 3000);
  }

  return { refresh };
})();

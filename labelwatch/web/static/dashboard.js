// labelwatch dashboard: plain JavaScript, no build step, no network beyond this worker's API.
// Data goes into the page as text nodes and SVG attributes only (never as HTML), charts are
// inline SVG drawn here.
"use strict";

(() => {
  const REFRESH_MS = 5000;
  const SVG_NS = "http://www.w3.org/2000/svg";
  // With LABELWATCH_QUERY_TOKEN set the page is opened as /dashboard/?token=...; the token
  // then goes to the API in a header, never in an API address.
  const TOKEN = new URLSearchParams(window.location.search).get("token");

  const KIND_NAMES = {
    annotator_drift: "Drift",
    annotator_anomaly: "Behaviour anomaly",
    spammer_suspected: "Spammer suspected",
    low_reliability: "Low reliability",
    privacy_spike: "Privacy signal spike",
    privacy_exposure: "PII exposed to an annotator",
    revoked_item_labeled: "Revoked item labeled",
    access_violation: "Access violation",
  };
  // Okabe-Ito colours (distinguishable with colour blindness), each with its own dash.
  const SERIES_STYLES = [
    ["#0072B2", ""],
    ["#D55E00", "6 3"],
    ["#009E73", "2 2"],
    ["#CC79A7", "8 3 2 3"],
    ["#B07A00", "4 4"],
    ["#3D8FC4", "1 3"],
    ["#444444", "10 4"],
  ];

  const state = {
    project: "",
    projects: new Set(),
    selected: readHash(),
    sort: { key: null, dir: 1 },
    data: { annotators: null, detail: null, alerts: null, privacy: null },
    busy: false,
    timer: null,
  };

  // ---- small helpers ------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.setAttribute("class", value);
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
  }

  const $ = (id) => document.getElementById(id);

  function isNum(x) {
    return typeof x === "number" && Number.isFinite(x);
  }

  function pct(x, digits = 1) {
    return isNum(x) ? `${(100 * x).toFixed(digits)}%` : "–";
  }

  function fixed(x, digits) {
    return isNum(x) ? x.toFixed(digits) : "–";
  }

  function count(x) {
    return isNum(x) ? x.toLocaleString("en-US") : "–";
  }

  function utc(iso) {
    if (!iso) return "–";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return String(iso);
    return date.toISOString().slice(0, 19).replace("T", " ");
  }

  // The minute aggregates know the minute of a label, not the second.
  function utcMinute(iso) {
    const text = utc(iso);
    return text.length === 19 ? text.slice(0, 16) : text;
  }

  function kindName(kind) {
    return KIND_NAMES[kind] || kind;
  }

  function keyOf(project, annotator) {
    return `${project}\u0000${annotator}`;
  }

  function readHash() {
    const match = /^#annotator=([^/]*)\/(.+)$/.exec(window.location.hash);
    if (!match) return null;
    try {
      return { project: decodeURIComponent(match[1]), annotator_id: decodeURIComponent(match[2]) };
    } catch (_) {
      return null;
    }
  }

  function writeHash(selected) {
    const hash = selected
      ? `#annotator=${encodeURIComponent(selected.project)}/${encodeURIComponent(selected.annotator_id)}`
      : "";
    history.replaceState(null, "", window.location.pathname + window.location.search + hash);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  async function getJSON(path) {
    const headers = { Accept: "application/json" };
    if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
    let response;
    try {
      response = await fetch(path, { headers, cache: "no-store", credentials: "same-origin" });
    } catch (_) {
      throw new ApiError(0, "the worker does not answer (stopped or unreachable)");
    }
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    if (!response.ok) {
      const reason = body && body.error ? body.error : `HTTP ${response.status}`;
      throw new ApiError(response.status, reason);
    }
    return body;
  }

  function explain(error) {
    if (!(error instanceof ApiError)) return `unexpected error: ${error.message || error}`;
    if (error.status === 503) return "the worker has not opened the store yet (it starts with its agents)";
    if (error.status === 401 || error.status === 403) return `access refused: ${error.message}`;
    return error.message;
  }

  function showState(id, text, kind) {
    const node = $(id);
    node.textContent = text || "";
    node.hidden = !text;
    node.className = `state${kind ? ` ${kind}` : ""}${node.classList.contains("small") ? " small" : ""}`;
  }

  function query(extra) {
    const params = new URLSearchParams();
    if (state.project) params.set("project", state.project);
    for (const [key, value] of Object.entries(extra || {})) params.set(key, value);
    const text = params.toString();
    return text ? `?${text}` : "";
  }

  // ---- refresh loop -------------------------------------------------------------------

  async function refresh() {
    if (state.busy) return;
    state.busy = true;
    clearTimeout(state.timer);
    const tasks = [loadAnnotators(), loadAlerts(), loadPrivacy()];
    if (state.selected) tasks.push(loadDetail());
    const results = await Promise.allSettled(tasks);
    state.busy = false;
    const failed = results.filter((r) => r.status === "fulfilled" && r.value === false).length;
    const time = new Date().toLocaleTimeString("en-GB");
    const status = $("status");
    status.classList.toggle("bad", failed > 0);
    const next = $("auto").checked ? `, next in ${REFRESH_MS / 1000} s` : ", automatic refresh off";
    status.textContent = failed
      ? `Some parts could not be loaded at ${time}${next}.`
      : `Updated ${time}${next}.`;
    schedule();
  }

  function schedule() {
    clearTimeout(state.timer);
    if ($("auto").checked) state.timer = setTimeout(refresh, REFRESH_MS);
  }

  // ---- annotator table ----------------------------------------------------------------

  async function loadAnnotators() {
    try {
      const data = await getJSON(`api/annotators${query()}`);
      state.data.annotators = data;
      for (const project of data.projects) state.projects.add(project);
      renderProjects();
      renderAnnotators();
      return true;
    } catch (error) {
      showState("annotators-state", `Could not load the annotators: ${explain(error)}. Retrying.`, "error");
      return false;
    }
  }

  function renderProjects() {
    const select = $("project");
    const have = new Set([...select.options].map((o) => o.value));
    for (const project of [...state.projects].sort()) {
      if (!have.has(project)) select.append(el("option", { value: project }, project));
    }
  }

  const SORT_NULLS_LAST = (a, b) => (a === null || a === undefined) - (b === null || b === undefined);

  function sortedRows(rows) {
    const { key, dir } = state.sort;
    if (!key) return rows;
    return [...rows].sort((a, b) => {
      const nulls = SORT_NULLS_LAST(a[key], b[key]);
      if (nulls) return nulls;
      if (a[key] < b[key]) return -dir;
      if (a[key] > b[key]) return dir;
      return 0;
    });
  }

  function intervalBar(row) {
    if (!isNum(row.accuracy)) return null;
    const x = (v) => 2 + 86 * Math.min(1, Math.max(0, v));
    return svg(
      "svg",
      { class: "interval", viewBox: "0 0 90 12", width: 90, height: 12, "aria-hidden": "true", focusable: "false" },
      svg("line", { x1: 2, x2: 88, y1: 6, y2: 6, class: "track" }),
      svg("rect", {
        x: x(row.accuracy_low),
        y: 2,
        width: Math.max(1, x(row.accuracy_high) - x(row.accuracy_low)),
        height: 8,
        rx: 2,
        class: "band",
      }),
      svg("circle", { cx: x(row.accuracy), cy: 6, r: 3, class: "dot" }),
    );
  }

  function severityBadge(severity, text) {
    return el("span", { class: `badge sev-${severity || "info"}` }, text || severity);
  }

  function renderAnnotators() {
    const data = state.data.annotators;
    const table = $("annotators");
    const focused = document.activeElement && document.activeElement.dataset
      ? document.activeElement.dataset.key
      : null;
    if (!data.annotators.length) {
      table.hidden = true;
      showState(
        "annotators-state",
        state.project
          ? `No labels stored for project ${state.project} yet.`
          : "No labels stored yet: the table fills in as the worker stores labels.",
        "empty",
      );
      $("annotators-note").hidden = true;
      return;
    }
    showState("annotators-state", "");
    const tbody = table.tBodies[0];
    const rows = sortedRows(data.annotators).map((row) => {
      const key = keyOf(row.project, row.annotator_id);
      const selected = state.selected && keyOf(state.selected.project, state.selected.annotator_id) === key;
      const reliability = isNum(row.accuracy)
        ? el(
            "span",
            { class: "rel-wrap" },
            el("span", { class: "rel-value" }, pct(row.accuracy)),
            el("span", { class: "rel-interval" }, `${pct(row.accuracy_low)}–${pct(row.accuracy_high)}`),
            intervalBar(row),
          )
        : el("span", { class: "muted" }, "no estimate yet");
      const anomaly = isNum(row.anomaly_score)
        ? [
            fixed(row.anomaly_score, 2),
            el("span", { class: "detector" }, ` ${row.anomaly_detector || ""}${row.anomaly_state === "resolved" ? " (resolved)" : ""}`),
          ]
        : el("span", { class: "muted" }, "–");
      const alerts = row.open_alerts
        ? severityBadge(row.worst_open_severity, String(row.open_alerts))
        : el("span", { class: "muted" }, "0");
      if (row.open_alerts) alerts.title = row.open_alert_kinds.map(kindName).join(", ");
      const gold = isNum(row.gold_accuracy)
        ? [pct(row.gold_accuracy), el("span", { class: "muted" }, ` of ${count(row.gold_seen)}`)]
        : el("span", { class: "muted" }, "no gold");
      return el(
        "tr",
        { class: [selected ? "selected" : "", row.open_alerts ? "flagged" : ""].join(" ").trim() || null },
        el(
          "th",
          { scope: "row" },
          el(
            "button",
            {
              type: "button",
              class: "linklike",
              "data-key": key,
              "aria-current": selected ? "true" : null,
              "aria-label": `Show details of annotator ${row.annotator_id} in project ${row.project}`,
              onclick: () => select({ project: row.project, annotator_id: row.annotator_id }),
            },
            row.annotator_id,
          ),
        ),
        el("td", {}, row.project),
        el("td", { class: "rel" }, reliability),
        el("td", { class: "num" }, count(row.labels)),
        el("td", { class: "num" }, pct(row.agreement_rate)),
        el("td", { class: "num" }, gold),
        el("td", { class: "num" }, isNum(row.median_seconds) ? `${fixed(row.median_seconds, 1)} s` : "–"),
        el("td", { class: "num" }, anomaly),
        el("td", { class: "num" }, alerts),
        el("td", {}, utcMinute(row.last_active)),
      );
    });
    tbody.replaceChildren(...rows);
    table.hidden = false;
    const note = $("annotators-note");
    note.hidden = !data.truncated;
    note.textContent = data.truncated
      ? `Showing the first ${data.annotators.length} annotators; choose a project to narrow the list.`
      : "";
    for (const th of table.tHead.rows[0].cells) {
      const active = th.dataset.sort === state.sort.key;
      th.setAttribute("aria-sort", active ? (state.sort.dir > 0 ? "ascending" : "descending") : "none");
    }
    if (focused) {
      const again = tbody.querySelector(`button[data-key="${CSS.escape(focused)}"]`);
      if (again) again.focus();
    }
  }

  function select(selected) {
    state.selected = selected;
    writeHash(selected);
    state.data.detail = null;
    if (state.data.annotators) renderAnnotators();
    $("detail-body").hidden = true;
    showState("detail-state", `Loading ${selected.annotator_id}…`, "loading");
    loadDetail().then(() => $("detail-panel").scrollIntoView({ block: "nearest" }));
  }

  // ---- drill-down ---------------------------------------------------------------------

  async function loadDetail() {
    const selected = state.selected;
    if (!selected) return true;
    const path = `api/annotator/${encodeURIComponent(selected.project)}/${encodeURIComponent(selected.annotator_id)}`;
    try {
      const detail = await getJSON(path);
      if (state.selected !== selected) return true;
      state.data.detail = detail;
      renderDetail();
      return true;
    } catch (error) {
      if (state.selected !== selected) return true;
      const text = error instanceof ApiError && error.status === 404
        ? `No labels stored for ${selected.annotator_id} in project ${selected.project}.`
        : `Could not load ${selected.annotator_id}: ${explain(error)}. Retrying.`;
      showState("detail-state", text, error.status === 404 ? "empty" : "error");
      $("detail-body").hidden = true;
      return error.status === 404;
    }
  }

  function renderDetail() {
    const detail = state.data.detail;
    if (!detail) return;
    const row = detail.annotator;
    $("detail-title").textContent = `Annotator ${row.annotator_id} (project ${row.project})`;
    showState("detail-state", "");
    const items = [
      ["Reliability", isNum(row.accuracy) ? `${pct(row.accuracy)} (90%: ${pct(row.accuracy_low)}–${pct(row.accuracy_high)})` : "no estimate yet"],
      ["Labels", count(row.labels)],
      ["Agreement with consensus", pct(row.agreement_rate)],
      ["Gold accuracy", isNum(row.gold_accuracy) ? `${pct(row.gold_accuracy)} of ${count(row.gold_seen)} gold` : "no gold seen"],
      ["Speed", isNum(row.median_seconds) ? `${fixed(row.median_seconds, 1)} s per label (median)` : "–"],
      ["Anomaly score", isNum(row.anomaly_score) ? `${fixed(row.anomaly_score, 2)} (${row.anomaly_detector}, ${row.anomaly_state})` : "no anomaly alert"],
      ["Open alerts", row.open_alerts ? `${row.open_alerts}: ${row.open_alert_kinds.map(kindName).join(", ")}` : "none"],
      ["Shards", isNum(row.shards) ? String(row.shards) : "–"],
      ["Last active (minute)", utcMinute(row.last_active)],
    ];
    $("detail-summary").replaceChildren(
      ...items.map(([term, value]) => el("div", {}, el("dt", {}, term), el("dd", {}, value))),
    );
    $("detail-body").hidden = false; // before drawing: a hidden chart has no width to fill
    drawReliability();

    const changes = detail.change_points;
    showState("changes-state", changes.length ? "" : "No change point detected for this annotator.", "empty");
    $("changes").replaceChildren(
      ...changes.map((c) =>
        el(
          "li",
          { class: "change" },
          el("strong", {}, utc(c.ts)),
          ` · ${c.detector || "drift"} · `,
          severityBadge(c.severity),
          ` ${c.reason}`,
          evidence(c.evidence),
          el("span", { class: "muted" }, c.resolved_at ? ` Resolved ${utc(c.resolved_at)}.` : " Still open."),
        ),
      ),
    );
    const episodes = detail.alerts;
    showState("episodes-state", episodes.length ? "" : "No alert raised for this annotator.", "empty");
    $("episodes").replaceChildren(
      ...episodes.map((a) =>
        el(
          "li",
          {},
          severityBadge(a.severity),
          " ",
          el("strong", {}, kindName(a.kind)),
          a.detector ? el("span", { class: "muted" }, ` (${a.detector})`) : null,
          ` opened ${utc(a.opened_at)}, `,
          a.open ? el("span", { class: "open-tag" }, "open") : `resolved ${utc(a.resolved_at)}`,
          el("div", { class: "reason" }, a.reason),
        ),
      ),
    );
  }

  function evidence(values) {
    const entries = Object.entries(values || {});
    if (!entries.length) return null;
    return el(
      "span",
      { class: "evidence" },
      ` (${entries.map(([k, v]) => `${k} ${typeof v === "number" ? +v.toFixed(3) : v}`).join(", ")})`,
    );
  }

  // ---- charts -------------------------------------------------------------------------

  const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

  function timeTicks(lo, hi, maxTicks) {
    const step = TIME_STEPS.find((s) => (hi - lo) / s <= maxTicks) || TIME_STEPS[TIME_STEPS.length - 1];
    const ticks = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi; t += step) ticks.push(t);
    return { ticks, step };
  }

  function timeLabel(t, step, span) {
    const iso = new Date(t).toISOString();
    if (span > 2 * 86400000) return `${iso.slice(5, 10)} ${iso.slice(11, 16)}`;
    if (step < 60000) return iso.slice(11, 19);
    return iso.slice(11, 16);
  }

  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * power >= value) return m * power;
    return 10 * power;
  }

  function frame(container, height, yTicks, yLabel, xDomain, title) {
    const width = Math.max(320, Math.floor(container.clientWidth || 720));
    const m = { top: 14, right: 30, bottom: 36, left: 52 };
    const w = width - m.left - m.right;
    const h = height - m.top - m.bottom;
    const [lo, hi] = xDomain;
    const x = (t) => m.left + (hi > lo ? ((t - lo) / (hi - lo)) * w : w / 2);
    const root = svg("svg", {
      viewBox: `0 0 ${width} ${height}`,
      width,
      height,
      role: "img",
      "aria-label": title,
    });
    root.append(svg("title", {}, title));
    const grid = svg("g", { class: "grid" });
    for (const [y, label] of yTicks(m.top, h)) {
      grid.append(svg("line", { x1: m.left, x2: m.left + w, y1: y, y2: y }));
      grid.append(svg("text", { x: m.left - 8, y: y + 4, "text-anchor": "end", class: "tick" }, label));
    }
    const { ticks, step } = timeTicks(lo, hi, Math.max(2, Math.floor(w / 110)));
    for (const t of ticks) {
      grid.append(svg("line", { x1: x(t), x2: x(t), y1: m.top + h, y2: m.top + h + 5, class: "xtick" }));
      grid.append(svg("text", { x: x(t), y: m.top + h + 18, "text-anchor": "middle", class: "tick" }, timeLabel(t, step, hi - lo)));
    }
    grid.append(svg("line", { x1: m.left, x2: m.left + w, y1: m.top + h, y2: m.top + h, class: "axis" }));
    grid.append(svg("text", { x: 14, y: m.top + h / 2, transform: `rotate(-90 14 ${m.top + h / 2})`, "text-anchor": "middle", class: "axis-label" }, yLabel));
    grid.append(svg("text", { x: m.left + w, y: height - 4, "text-anchor": "end", class: "axis-label" }, "event time (UTC)"));
    root.append(grid);
    return { root, x, m, w, h };
  }

  function timeDomain(times) {
    let lo = Math.min(...times);
    let hi = Math.max(...times);
    if (!(hi > lo)) {
      lo -= 30000;
      hi += 30000;
    }
    return [lo, hi];
  }

  function drawReliability() {
    const container = $("reliability-chart");
    const detail = state.data.detail;
    if (!detail) return;
    const points = detail.reliability.map((p) => ({ ...p, t: Date.parse(p.ts) }));
    const changes = detail.change_points.map((c) => ({ ...c, t: Date.parse(c.ts), end: c.resolved_at ? Date.parse(c.resolved_at) : null }));
    if (!points.length) {
      container.replaceChildren(el("p", { class: "state empty" }, "No reliability snapshot stored yet for this annotator."));
      return;
    }
    const domain = timeDomain([...points.map((p) => p.t), ...changes.map((c) => c.t)]);
    const height = 280;
    const yTicks = (top, h) => [0, 0.25, 0.5, 0.75, 1].map((v) => [top + h * (1 - v), `${v * 100}%`]);
    const title = `Reliability of ${detail.annotator.annotator_id} over time, ${points.length} snapshots, ${changes.length} change points`;
    const { root, x, m, w, h } = frame(container, height, yTicks, "accuracy", domain, title);
    const y = (v) => m.top + h * (1 - Math.min(1, Math.max(0, v)));

    for (const c of changes) {
      if (c.end !== null && c.end > c.t) {
        root.append(svg("rect", { class: "episode", x: x(c.t), y: m.top, width: Math.max(1, Math.min(x(c.end), m.left + w) - x(c.t)), height: h }));
      }
    }
    const upper = points.map((p) => `${x(p.t).toFixed(1)},${y(p.accuracy_high).toFixed(1)}`);
    const lower = points.map((p) => `${x(p.t).toFixed(1)},${y(p.accuracy_low).toFixed(1)}`).reverse();
    if (points.length > 1) {
      root.append(svg("polygon", { class: "band", points: [...upper, ...lower].join(" ") }));
      root.append(svg("polyline", { class: "line", points: points.map((p) => `${x(p.t).toFixed(1)},${y(p.accuracy).toFixed(1)}`).join(" ") }));
    } else {
      const p = points[0];
      root.append(svg("line", { class: "whisker", x1: x(p.t), x2: x(p.t), y1: y(p.accuracy_low), y2: y(p.accuracy_high) }));
    }
    const last = points[points.length - 1];
    root.append(
      svg("circle", { class: "last", cx: x(last.t), cy: y(last.accuracy), r: 4 },
        svg("title", {}, `${utc(last.ts)}: ${pct(last.accuracy)} (${pct(last.accuracy_low)}–${pct(last.accuracy_high)}), ${last.n_labels} labels`)),
    );
    for (const c of changes) {
      const cx = x(c.t);
      root.append(
        svg(
          "g",
          { class: "change-point", "data-alert-id": c.alert_id },
          svg("title", {}, `Change point ${utc(c.ts)} (${c.detector}): ${c.reason}`),
          svg("line", { x1: cx, x2: cx, y1: m.top, y2: m.top + h }),
          svg("path", { d: `M${cx - 6},${m.top - 2} L${cx + 6},${m.top - 2} L${cx},${m.top + 8} Z` }),
        ),
      );
    }
    container.replaceChildren(root);
  }

  async function loadAlerts() {
    try {
      state.data.alerts = await getJSON(`api/alerts${query()}`);
      renderAlerts();
      return true;
    } catch (error) {
      showState("alerts-state", `Could not load the open alerts: ${explain(error)}. Retrying.`, "error");
      return false;
    }
  }

  function renderAlerts() {
    const data = state.data.alerts;
    const list = $("alerts");
    const counts = Object.entries(data.by_severity)
      .sort((a, b) => ["critical", "warning", "info"].indexOf(a[0]) - ["critical", "warning", "info"].indexOf(b[0]))
      .map(([severity, n]) => `${n} ${severity}`);
    $("alerts-counts").textContent = data.total ? `${data.total} open: ${counts.join(", ")}` : "";
    if (!data.alerts.length) {
      list.replaceChildren();
      showState("alerts-state", "No open alerts. Alerts appear here while their episode is open.", "empty");
      return;
    }
    showState("alerts-state", data.truncated ? `Showing ${data.alerts.length} of ${data.total}, worst first.` : "");
    list.replaceChildren(
      ...data.alerts.map((a) => {
        let subject;
        if (a.annotator_id) {
          subject = [
            "Annotator ",
            el(
              "button",
              {
                type: "button",
                class: "linklike",
                "aria-label": `Show details of annotator ${a.annotator_id} in project ${a.project}`,
                onclick: () => select({ project: a.project, annotator_id: a.annotator_id }),
              },
              a.annotator_id,
            ),
          ];
        } else if (a.item_id) {
          subject = `Item ${a.item_id}`;
        } else {
          subject = `Signal kind ${a.subject || "?"}`;
        }
        return el(
          "li",
          { class: `alert sev-${a.severity}`, "data-kind": a.kind },
          el(
            "div",
            { class: "alert-head" },
            severityBadge(a.severity),
            el("strong", {}, kindName(a.kind)),
            el("span", { class: "muted" }, a.detector ? `${a.kind} · ${a.detector}` : a.kind),
          ),
          el("div", { class: "alert-subject" }, subject, el("span", { class: "muted" }, ` · project ${a.project}`)),
          el("p", { class: "reason" }, a.reason),
          el(
            "div",
            { class: "meta" },
            `opened ${utc(a.opened_at)} · updated ${utc(a.updated_at)} · score ${fixed(a.score, 2)} (threshold ${fixed(a.threshold, 2)})`,
          ),
        );
      }),
    );
  }

  async function loadPrivacy() {
    try {
      state.data.privacy = await getJSON(`api/privacy${query()}`);
      drawPrivacy();
      return true;
    } catch (error) {
      showState("privacy-state", `Could not load the privacy signals: ${explain(error)}. Retrying.`, "error");
      return false;
    }
  }

  function drawPrivacy() {
    const data = state.data.privacy;
    if (!data) return;
    const figure = $("privacy-figure");
    if (!data.kinds.length) {
      figure.hidden = true;
      showState("privacy-state", "No privacy signals stored yet.", "empty");
      $("privacy-window").textContent = "Signals per kind over time (event time, UTC).";
      return;
    }
    showState("privacy-state", "");
    figure.hidden = false;
    const bucket = data.bucket_minutes * 60000;
    const first = Math.floor(Date.parse(data.start) / bucket) * bucket;
    const lastBucket = Math.floor(Date.parse(data.end) / bucket) * bucket;
    // The API lists non-empty buckets only; a missing bucket had no signal.
    const series = data.kinds.map((kind, i) => {
      const byTime = new Map(data.series[kind].points.map((p) => [Math.floor(Date.parse(p.ts) / bucket) * bucket, p]));
      const points = [];
      for (let t = first; t <= lastBucket; t += bucket) {
        const p = byTime.get(t);
        points.push({ t, signals: p ? p.signals : 0, serious: p ? p.serious : 0 });
      }
      return { kind, points, style: SERIES_STYLES[i % SERIES_STYLES.length], total: data.series[kind].signals, serious: data.series[kind].serious };
    });
    const top = niceMax(Math.max(...series.flatMap((s) => s.points.map((p) => p.signals))));
    const yTicks = (t, h) => [0, 0.25, 0.5, 0.75, 1].map((f) => [t + h * (1 - f), String(+(f * top).toFixed(2))]);
    const per = data.bucket_minutes === 1 ? "minute" : `${data.bucket_minutes} minutes`;
    $("privacy-window").textContent = `Signals per ${per}, ${utc(data.start)} to ${utc(data.end)} UTC (event time).`;
    const title = `Privacy signals per ${per} for ${series.length} kinds`;
    const { root, x, m, h } = frame($("privacy-chart"), 280, yTicks, `signals per ${per}`, timeDomain([first, lastBucket]), title);
    const y = (v) => m.top + h * (1 - v / top);
    for (const s of series) {
      const [colour, dash] = s.style;
      const group = svg("g", { class: "series", "data-kind": s.kind }, svg("title", {}, `${s.kind}: ${s.total} signals`));
      const coords = s.points.map((p) => `${x(p.t).toFixed(1)},${y(p.signals).toFixed(1)}`).join(" ");
      if (s.points.length > 1) {
        group.append(svg("polyline", { points: coords, stroke: colour, "stroke-dasharray": dash || null, fill: "none", "stroke-width": 2 }));
      }
      if (s.points.length <= 60) {
        for (const p of s.points) {
          if (!p.signals && s.points.length > 1) continue;
          group.append(
            svg("circle", { cx: x(p.t), cy: y(p.signals), r: 3, fill: colour },
              svg("title", {}, `${s.kind} ${utc(new Date(p.t).toISOString())}: ${p.signals} signals`)),
          );
        }
      }
      root.append(group);
    }
    $("privacy-chart").replaceChildren(root);
    $("privacy-legend").replaceChildren(
      ...series.map((s) =>
        el(
          "li",
          { "data-kind": s.kind },
          svg("svg", { width: 28, height: 10, "aria-hidden": "true", focusable: "false" },
            svg("line", { x1: 1, x2: 27, y1: 5, y2: 5, stroke: s.style[0], "stroke-width": 3, "stroke-dasharray": s.style[1] || null })),
          el("span", { class: "kind" }, s.kind),
          el("span", { class: "muted" }, ` ${count(s.total)} signals${s.serious ? `, ${count(s.serious)} high or critical` : ""}`),
        ),
      ),
    );
  }

  // ---- wiring -------------------------------------------------------------------------

  function init() {
    $("controls").addEventListener("submit", (event) => event.preventDefault());
    $("project").addEventListener("change", (event) => {
      state.project = event.target.value;
      if (state.selected && state.project && state.selected.project !== state.project) {
        state.selected = null;
        writeHash(null);
        $("detail-body").hidden = true;
        $("detail-title").textContent = "Annotator detail";
        showState("detail-state", "No annotator chosen yet: choose one in the table above.");
      }
      refresh();
    });
    $("auto").addEventListener("change", () => {
      schedule();
      const status = $("status");
      status.textContent = $("auto").checked
        ? `Automatic refresh on, every ${REFRESH_MS / 1000} s.`
        : "Automatic refresh off.";
    });
    $("refresh").addEventListener("click", refresh);
    for (const th of $("annotators").tHead.rows[0].cells) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        if (state.data.annotators) renderAnnotators();
      });
    }
    let resize = null;
    window.addEventListener("resize", () => {
      clearTimeout(resize);
      resize = setTimeout(() => {
        drawReliability();
        drawPrivacy();
      }, 150);
    });
    window.addEventListener("hashchange", () => {
      const selected = readHash();
      if (selected) select(selected);
    });
    if (state.selected) showState("detail-state", `Loading ${state.selected.annotator_id}…`, "loading");
    refresh();
  }

  init();
})();

// The operations console: every figure comes from the mesh's /v1/ API with
// the operator's key (kept in this tab's sessionStorage), so the API's scope
// checks are the console's. The page refreshes itself every few seconds.

const REFRESH_MS = 5000;
const KEY = "tilores-x-console-key";
const PAGES = {
  mesh: { title: "Mesh", render: meshPage },
  quality: { title: "Quality", render: qualityPage },
  experiments: { title: "Experiments", render: experimentsPage },
  prompts: { title: "Prompts", render: promptsPage },
  access: { title: "Access log", render: accessPage },
};
const LEVEL_COLOURS = { critical: "#d0342c", warning: "#d98200", target: "#1f9d55", excellent: "#2d6cdf" };
const SERIES_COLOURS = ["#2d6cdf", "#8e44ad", "#16a085", "#c0392b", "#d35400", "#2c3e50", "#7f8c8d", "#27ae60"];

const state = { session: null, page: null, timer: null, generation: 0, breakers: {}, edge: {}, replicas: {}, charts: [], drawing: [], prompt: null };

const $ = (selector, root = document) => root.querySelector(selector);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (name === "style") node.style.cssText = value; // through the CSSOM: the page's CSP forbids style attributes
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  for (const child of children.flat()) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = { Authorization: `Bearer ${key}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const reply = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  const text = await reply.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (!reply.ok) throw new ApiError(reply.status, body?.error?.message || `HTTP ${reply.status}`);
  return body;
}

const pad = (n) => String(n).padStart(2, "0");
// Local time as 2026-11-30 09:44:07: sortable, and what datetime-local inputs take (less the seconds).
function localTime(seconds) {
  const d = new Date(seconds * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
// Seconds since the epoch of a time as the API writes it (ISO 8601), or null.
const secondsOf = (iso) => (iso ? Date.parse(iso) / 1000 : null);
const when = (iso) => (iso ? localTime(secondsOf(iso)) : "—");
const pct = (value) => (value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)} %`);
const fixed = (value, digits = 3) => (value === null || value === undefined ? "—" : Number(value).toFixed(digits));

function badge(text) {
  const word = String(text || "unknown").toLowerCase();
  const kind = /^(ok|serving|closed|connected|excellent|on target|promoted|true|running|succeeded)$/.test(word)
    ? "ok"
    : /^(degraded|half_open|below target|warning|concluded|medium|low|high)$/.test(word)
      ? "warn"
      : /^(unavailable|unreachable|not_serving|open|critical|killed|stopped_by_guardrail|false|error|failed)$/.test(word)
        ? "bad"
        : "info";
  return el("span", { class: `badge ${kind}` }, text);
}

function table(headers, rows, numeric = []) {
  return el(
    "table",
    {},
    el("thead", {}, el("tr", {}, headers.map((h, i) => el("th", { class: numeric.includes(i) ? "num" : "" }, h)))),
    el("tbody", {}, rows.map((row) => el("tr", {}, row.map((cell, i) => el("td", { class: numeric.includes(i) ? "num" : "" }, cell))))),
  );
}

function card(title, ...children) {
  return el("div", { class: "card" }, el("h3", {}, title), ...children);
}

function wideCard(title, ...children) {
  const node = card(title, ...children);
  node.classList.add("wide");
  return node;
}

function disposeCharts(charts = state.charts) {
  for (const chart of charts) chart.destroy();
  charts.length = 0;
}

// A time series chart: `series` is [{label, points: [[at, value], ...], colour, dash}].
// Off the chart the legend shows each series' latest value (uPlot's own shows "--" until hovered).
function timeChart(target, series, { height = 260, min = null, max = null, markers = [], from = null, to = null, digits = 3 } = {}) {
  const times = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  if (!times.length) {
    target.append(el("p", { class: "muted" }, "No data in this time range yet."));
    return null;
  }
  const columns = series.map((s) => {
    const byTime = new Map(s.points.map(([t, v]) => [t, v]));
    return times.map((t) => (byTime.has(t) ? byTime.get(t) : null));
  });
  // Drawn off screen first: as wide as the page's content, less a card's padding.
  const width = Math.max(320, ($("#content").clientWidth || 940) - 40);
  const options = {
    width,
    height,
    scales: { x: from === null ? { time: true } : { time: true, range: [from, to] }, y: min === null ? {} : { range: [min, max] } },
    // The time column shows the latest reading's time off the chart too.
    series: [{ value: (u, v, _series, idx) => localTime(idx === null || idx === undefined ? times[times.length - 1] : v) }, ...series.map((s) => {
      const latest = s.points.length ? s.points[s.points.length - 1][1] : null;
      const shown = (v) => (v === null || v === undefined ? "—" : Number(v).toFixed(digits));
      return {
        label: s.label, stroke: s.colour, width: s.width || 2, dash: s.dash, spanGaps: true,
        value: (u, v, _series, idx) => shown(idx === null || idx === undefined ? latest : v),
      };
    })],
    axes: [{}, { size: 56 }],
    hooks: {
      // The time range drawn, for whoever reads the page (a test, a screen reader's title).
      setScale: [(u, key) => { if (key === "x") Object.assign(u.root.dataset, { from: String(u.scales.x.min), to: String(u.scales.x.max) }); }],
      draw: [
        (u) => {
          // Alerts on the same time axis: a vertical line each.
          const { ctx } = u;
          for (const marker of markers) {
            const x = u.valToPos(marker.at, "x", true);
            if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
            ctx.save();
            ctx.strokeStyle = marker.colour;
            ctx.lineWidth = 1.5 * devicePixelRatio;
            ctx.setLineDash([4 * devicePixelRatio, 3 * devicePixelRatio]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.restore();
          }
        },
      ],
    },
  };
  const chart = new uPlot(options, [times, ...columns], target);
  chart.root.dataset.series = String(series.length);
  chart.root.dataset.points = String(times.length);
  state.drawing.push(chart);
  return chart;
}

// ---- Mesh ---------------------------------------------------------------

async function meshPage(content) {
  const mesh = await api("/v1/console/mesh");
  const now = Date.now() / 1000;
  for (const [provider, breaker] of Object.entries(mesh.breakers || {})) {
    const history = (state.breakers[provider] ||= []);
    history.push({ at: now, state: breaker.state });
    if (history.length > 120) history.shift();
  }
  // Readings per gateway replica: Envoy may send each poll to another one.
  const edge = mesh.gateway || {};
  const readings = (state.edge[edge.replica] ||= []);
  readings.push({ at: now, ...edge });
  if (readings.length > 180) readings.shift();

  const services = Object.entries(mesh.services || {}).map(([name, s]) => [
    name,
    badge(s.status),
    s.replicas_total === null ? "this replica" : `${s.replicas_serving} of ${s.replicas_total}`,
  ]);
  // Every replica: its figures since it started, turned into rates against the previous reading.
  const replicaRows = [];
  const seen = {};
  for (const [name, s] of Object.entries(mesh.services || {})) {
    for (const replica of s.replicas || []) {
      const key = `${name}@${replica.address}`;
      const now = replica.stats;
      const before = state.replicas[key];
      seen[key] = now ? { at: Date.now() / 1000, ...now } : undefined;
      let rps = "—", errors = "—", latency = "—";
      if (now && before && now.uptime_s >= before.uptime_s) {
        const seconds = Date.now() / 1000 - before.at;
        const calls = now.rpcs - before.rpcs;
        rps = (calls / seconds).toFixed(1);
        errors = calls ? pct((now.server_errors - before.server_errors) / calls) : "0.0 %";
        latency = calls ? `${(((now.rpc_seconds - before.rpc_seconds) / calls) * 1000).toFixed(1)} ms` : "—";
      }
      replicaRows.push([
        name, replica.address, badge(replica.serving ? "serving" : "not_serving"),
        now ? now.streams_in_flight : "—", rps, errors, latency,
        now ? `${Math.round(now.rss_bytes / 1048576)} MB` : "—", now ? `${Math.round(now.uptime_s / 60)} min` : "—",
      ]);
    }
  }
  state.replicas = Object.fromEntries(Object.entries(seen).filter(([, v]) => v));
  const breakers = Object.entries(mesh.breakers || {}).map(([provider, b]) => [
    provider,
    b.configured ? "yes" : "no",
    badge(b.state),
    b.retry_after_ms ? `${Math.round(b.retry_after_ms / 1000)} s` : "—",
    el("div", { class: "history", title: "state at each refresh since this page opened" },
      (state.breakers[provider] || []).map((h) => el("span", { class: h.state, title: `${new Date(h.at * 1000).toLocaleTimeString()}: ${h.state}` }))),
    el("div", { class: "changes" }, (b.changes || []).slice(-5).map((c) => el("span", {}, badge(c.state), ` ${when(c.at).slice(11)} `))),
  ]);
  const cache = mesh.cache || {};
  const tiers = Object.entries(cache.tiers || {}).map(([tier, t]) => {
    const reads = t.hits + t.misses;
    return [tier === "l1" ? "l1 (in-process)" : tier === "l2" ? "l2 (Redis)" : tier, t.hits, t.misses, t.errors, reads ? pct(t.hits / reads) : "—"];
  });
  const tilores = mesh.tilores || {};
  const optimizer = mesh.optimizer || {};

  const edgeChart = el("div", { id: "edge-chart" });
  content.replaceChildren(
    el("p", {}, "The mesh is ", badge(mesh.status), mesh.status_code === 200 ? "" : ` (HTTP ${mesh.status_code})`),
    el(
      "div",
      { class: "grid" },
      card("Services and replicas", table(["service", "status", "replicas serving"], services)),
      wideCard("Model providers' circuit breakers", breakers.length ? table(["provider", "configured", "state", "retry in", "at each refresh", "latest changes"], breakers) : el("p", { class: "muted" }, "No provider is configured.")),
      card(
        "Cache tiers",
        el("p", {}, "Redis: ", badge(cache.redis || "none"), ` · ${cache.l1_entries ?? 0} entries in process · ${cache.l2_keys ?? 0} keys in Redis`),
        table(["tier", "hits", "misses", "errors", "hit rate"], tiers, [1, 2, 3, 4]),
      ),
      card(
        "Tilores",
        table(["backend", "reachable", "latency", "detail"], [[tilores.backend || "—", badge(String(!!tilores.reachable)), tilores.latency_ms ? `${fixed(tilores.latency_ms, 1)} ms` : "—", tilores.detail || ""]]),
        el("h3", {}, "Improvement cycle"),
        optimizer.improvement_cycle
          ? el("p", {}, `#${optimizer.improvement_cycle.id} ${optimizer.improvement_cycle.prompt} / ${optimizer.improvement_cycle.category}: `, badge(optimizer.improvement_cycle.state))
          : el("p", { class: "muted" }, "None running."),
      ),
    ),
    card("Replicas (calls per second, server errors and mean time per call since the last refresh)",
      replicaRows.length
        ? table(["service", "replica", "health", "streams now", "calls/s", "server errors", "mean time", "memory", "up"], replicaRows, [3, 4, 5, 6, 7, 8])
        : el("p", { class: "muted" }, "No replica answered.")),
    card(`Traffic through gateway replica ${edge.replica || ""} (requests and 5xx per second, mean latency, streams in flight)`, edgeChart),
  );
  const rates = [];
  for (let i = 1; i < readings.length; i++) {
    const a = readings[i - 1];
    const b = readings[i];
    const seconds = b.at - a.at;
    if (seconds <= 0 || b.requests === undefined) continue;
    const requests = Math.max(0, b.requests - a.requests);
    const latency = b.seconds_count > a.seconds_count ? (b.seconds_sum - a.seconds_sum) / (b.seconds_count - a.seconds_count) : null;
    rates.push({ at: b.at, rps: requests / seconds, errors: Math.max(0, b.server_errors - a.server_errors) / seconds, latency, streams: b.streams_in_flight });
  }
  if (rates.length) {
    timeChart(edgeChart, [
      { label: "requests/s", colour: "#2d6cdf", points: rates.map((r) => [r.at, r.rps]) },
      { label: "5xx/s", colour: "#d0342c", points: rates.map((r) => [r.at, r.errors]) },
      { label: "mean latency (s)", colour: "#8e44ad", points: rates.map((r) => [r.at, r.latency]) },
      { label: "streams in flight", colour: "#16a085", points: rates.map((r) => [r.at, r.streams]) },
    ], { height: 200 });
  } else {
    edgeChart.append(el("p", { class: "muted" }, "Rates appear after the next refresh."));
  }
}

// ---- Quality ------------------------------------------------------------

async function qualityPage(content) {
  const group = state.qualityGroup || "category";
  // "fit": the range the data fills, so a young mesh's minutes are not a dot at the edge of a day.
  const hours = state.qualityHours || "fit";
  const range = hours === "fit" ? "" : `&hours=${encodeURIComponent(hours)}`;
  const [history, quality] = await Promise.all([
    api(`/v1/quality/history?group=${encodeURIComponent(group)}${range}`),
    api("/v1/quality"),
  ]);
  const levels = history.levels || {};
  const since = secondsOf(history.since) ?? Date.now() / 1000 - 86400;
  const alerts = (quality.alerts || []).filter((a) => secondsOf(a.at) >= since && a.key.startsWith(`quality:${group}:`));
  const chartBox = el("div", { id: "quality-chart" });
  const controls = el(
    "div",
    {},
    el("label", {}, "Group", el("select", { id: "quality-group", onchange: (e) => { state.qualityGroup = e.target.value; refresh(); } },
      ["category", "model", "mode", "prompt"].map((g) => el("option", { value: g, selected: g === group }, g)))),
    el("label", {}, "Time", el("select", { id: "quality-hours", onchange: (e) => { state.qualityHours = e.target.value; refresh(); } },
      [["fit", "what the data fills"], ["1", "1 hour"], ["6", "6 hours"], ["24", "24 hours"], ["168", "7 days"]].map(([v, t]) => el("option", { value: v, selected: v === hours }, t)))),
  );
  const groups = (quality.groups || []).filter((g) => g.group === group);
  content.replaceChildren(
    controls,
    card(
      `Rolling quality by ${group} (the mean of the last ${history.window || "?"} scored turns)`,
      chartBox,
      el("div", { class: "legend" }, Object.entries(LEVEL_COLOURS).map(([level, colour]) => el("span", {}, el("i", { style: `background:${colour}` }), `${level} ${fixed(levels[level], 2)}`)),
        el("span", {}, el("i", { style: "background:#d0342c" }), "alert (dashed vertical line)")),
    ),
    el(
      "div",
      { class: "grid" },
      card(`Now, by ${group}`, groups.length
        ? table([group, "turns", "mean", "trend per turn", "level"], groups.map((g) => [g.key, g.turns, fixed(g.mean), g.slope ? g.slope.toFixed(4) : "flat", badge(g.level)]), [1, 2, 3])
        : el("p", { class: "muted" }, "No group has enough scored turns yet.")),
      card("Alerts", alerts.length
        ? table(["when", "severity", "message"], alerts.map((a) => [when(a.at), badge(a.severity), a.message]))
        : el("p", { class: "muted" }, "No alert in this time range.")),
    ),
  );
  const series = (history.series || []).map((s, i) => ({
    label: s.key,
    colour: SERIES_COLOURS[i % SERIES_COLOURS.length],
    points: s.points.map((p) => [secondsOf(p.at), p.mean]),
  }));
  const now = secondsOf(history.until) ?? Date.now() / 1000;
  if (series.length) {
    for (const [level, colour] of Object.entries(LEVEL_COLOURS)) {
      if (levels[level] === undefined) continue;
      series.push({ label: level, colour, dash: [6, 4], width: 1, points: [[since, levels[level]], [now, levels[level]]] });
    }
  }
  const severityColour = { CRITICAL: "#d0342c", HIGH: "#d98200", MEDIUM: "#d98200", LOW: "#2d6cdf", INFO: "#7f8c8d" };
  timeChart(chartBox, series, { min: 0.5, max: 1, from: since, to: now, markers: alerts.map((a) => ({ at: secondsOf(a.at), colour: severityColour[a.severity] || "#d0342c" })) });
}

// ---- Experiments ---------------------------------------------------------

function armsChart(arms) {
  const width = 560;
  const row = 30;
  const left = 90;
  const scale = (v) => left + v * (width - left - 20);
  const height = arms.length * row + 30;
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((t) => [
    svg("line", { x1: scale(t), x2: scale(t), y1: 0, y2: height - 20, stroke: "#dde1e8" }),
    svg("text", { x: scale(t), y: height - 5, "text-anchor": "middle" }, t.toFixed(2)),
  ]);
  const bars = arms.map((arm, i) => {
    const y = i * row + 15;
    return svg(
      "g",
      { class: "arm", "data-version": arm.version },
      svg("text", { x: 0, y: y + 4 }, `v${arm.version} (n=${arm.scored})`),
      arm.scored > 1 ? svg("line", { x1: scale(arm.ci_low), x2: scale(arm.ci_high), y1: y, y2: y, stroke: "#2d6cdf", "stroke-width": 3 }) : "",
      arm.scored > 0 ? svg("circle", { cx: scale(arm.mean), cy: y, r: 5, fill: arm.weight > 0 ? "#1d2330" : "#b0b6c3" }) : "",
    );
  });
  return svg("svg", { width, height, class: "arms", role: "img", "aria-label": "mean quality of each arm with its 95 % confidence interval" }, ...ticks, ...bars);
}

async function experimentView(id) {
  const reply = await api(`/v1/experiments/${id}`);
  const x = reply.experiment;
  return card(
    `Experiment #${x.id} · ${x.prompt}`,
    el("p", {}, badge(x.state), ` control v${x.control_version} · looks from ${x.min_samples} scored turns per arm · α ${x.alpha} · auto-promote ${x.auto_promote ? "on" : "off"}`),
    el("p", { class: "decision" }, el("strong", {}, "Decision rule: "), x.decision || "—"),
    armsChart(x.arms || []),
    table(
      ["arm", "weight", "turns", "scored", "mean", "95 % CI", "errors", "thumbs up", "thumbs down", "p (quality)"],
      (x.arms || []).map((a) => [`v${a.version}`, a.weight, a.turns, a.scored, fixed(a.mean), `${fixed(a.ci_low)} – ${fixed(a.ci_high)}`, a.errors, a.thumbs_up, a.thumbs_down, a.p_quality === null ? "—" : fixed(a.p_quality, 4)]),
      [1, 2, 3, 4, 6, 7, 8, 9],
    ),
  );
}

function heatColour(value) {
  if (value === null || value === undefined) return "#b0b6c3";
  if (value < 0.85) return "#d0342c";
  if (value < 0.95) return "#d98200";
  return "#1f9d55";
}

async function evaluationView(runId) {
  const reply = await api(`/v1/evaluations/${encodeURIComponent(runId)}`);
  const run = reply.run;
  const cells = run.cells || [];
  const models = [...new Set(cells.map((c) => c.model))];
  const spectrums = [...new Set(cells.map((c) => c.spectrum))];
  const cell = (m, s) => cells.find((c) => c.model === m && c.spectrum === s);
  return card(
    `Evaluation ${run.id} · ${run.state} · ${run.done} of ${run.total}`,
    cells.length
      ? el("table", { class: "heat" },
          el("thead", {}, el("tr", {}, el("th", {}, "quality"), spectrums.map((s) => el("th", { class: "num" }, s)))),
          el("tbody", {}, models.map((m) => el("tr", {}, el("th", {}, m), spectrums.map((s) => {
            const c = cell(m, s);
            const q = c ? c.quality : null;
            return el("td", { class: "num", style: `background:${heatColour(q)}`, title: c ? `precision ${fixed(c.precision)} · recall ${fixed(c.recall)} · ${c.questions} questions` : "" }, q === null ? "—" : fixed(q, 2));
          })))))
      : el("p", { class: "muted" }, "No results yet."),
  );
}

// A link that opens an item on this page: `select` records which, then the page redraws.
const opener = (text, attrs, select) => el("a", { href: location.hash || "#experiments", ...attrs, onclick: (e) => { e.preventDefault(); select(); refresh(); } }, text);

async function experimentsPage(content) {
  const [listed, runs, status] = await Promise.all([
    api("/v1/experiments?limit=20"),
    api("/v1/evaluations?limit=20"),
    api("/v1/virtuous-cycle/status"),
  ]);
  const experiments = listed.experiments || [];
  const evaluations = runs.runs || [];
  // The chosen one, else the first running experiment, else the newest.
  const shownId = state.experimentId || experiments[0]?.id;
  const shown = shownId ? await experimentView(shownId).catch((e) => card(`Experiment #${shownId}`, el("p", { class: "error" }, e.message))) : null;
  const runId = state.evaluationId || evaluations[0]?.id;
  const evaluation = runId ? await evaluationView(runId).catch((e) => card("Evaluation", el("p", { class: "error" }, e.message))) : null;
  // An arm as its share of the traffic (weights need not add up to 1) and its scored turns.
  const armText = (x, a, total) => `v${a.version}${a.version === x.control_version ? " (control)" : ""} ${total ? Math.round((a.weight / total) * 100) : 0} %: ${a.scored} scored`;
  const experimentRows = experiments.map((x) => [
    opener(`#${x.id}`, { class: "experiment-link", "data-id": x.id }, () => { state.experimentId = x.id; }),
    x.prompt, badge(x.state),
    (x.arms || []).map((a, _, arms) => armText(x, a, arms.reduce((sum, b) => sum + b.weight, 0))).join(" · "),
    when(x.created_at), x.started_by || "—", x.decision || "—",
  ]);
  const runRows = evaluations.map((r) => [
    opener(r.id, { class: "evaluation-link", "data-id": r.id }, () => { state.evaluationId = r.id; }),
    badge(r.state), (r.models || []).join(", "), `${r.done} of ${r.total}`, when(r.started_at), r.started_by || "—", r.note || "",
  ]);
  const cycles = (status.cycles || []).map((c) => [
    `#${c.id}`, when(c.started_at), `${c.prompt} / ${c.category || "all"}`, c.reason,
    (c.variants || []).map((v) => `v${v.version}: ${v.pattern}`).join(", ") || "—",
    c.experiment ? `#${c.experiment.id} ` : "", c.outcome || "running",
  ]);
  const learning = (status.learning || []).map((l) => [l.pattern, l.wins, l.losses, l.wins + l.losses ? pct(l.wins / (l.wins + l.losses)) : "—"]);
  content.replaceChildren(
    wideCard("Experiments (running first, then the newest)", experimentRows.length
      ? table(["experiment", "prompt", "state", "arms", "started", "by", "decision"], experimentRows)
      : el("p", { class: "muted" }, "No experiment has run yet.")),
    ...(shown ? [shown] : []),
    wideCard("Evaluation runs (newest first)", runRows.length
      ? table(["run", "state", "models", "answers graded", "started", "by", "note"], runRows)
      : el("p", { class: "muted" }, "No evaluation has run yet.")),
    ...(evaluation ? [evaluation] : []),
    card("Improvement cycles: what each tried and what came of it", cycles.length ? table(["cycle", "started", "prompt / category", "why", "variants tried", "experiment", "outcome"], cycles) : el("p", { class: "muted" }, "No cycle yet.")),
    card("What the cycles learnt", learning.length ? table(["refinement pattern", "wins", "losses", "win rate"], learning, [1, 2, 3]) : el("p", { class: "muted" }, "Nothing yet.")),
  );
}

// ---- Prompts --------------------------------------------------------------

function confirmAction(text, withReason) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-reason").value = "";
  $("#confirm-reason-label").hidden = !withReason;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok" ? $("#confirm-reason").value : null), { once: true });
    dialog.showModal();
  });
}

function diffColumns(left, right) {
  const parts = Diff.diffLines(left, right);
  const before = el("pre", { class: "left" });
  const after = el("pre", { class: "right" });
  for (const part of parts) {
    if (part.removed) before.append(el("del", {}, part.value));
    else if (part.added) after.append(el("ins", {}, part.value));
    else {
      before.append(part.value);
      after.append(part.value);
    }
  }
  return [before, after];
}

async function promptsPage(content) {
  const list = await api("/v1/prompts");
  const prompts = list.prompts || [];
  const name = [state.prompt, "customer", prompts[0]?.name].find((n) => n && prompts.some((p) => p.name === n));
  if (!name) {
    content.replaceChildren(el("p", { class: "muted" }, "No prompts."));
    return;
  }
  state.prompt = name;
  const detail = await api(`/v1/prompts/${encodeURIComponent(name)}`);
  const versions = detail.versions || [];
  const byVersion = Object.fromEntries(versions.map((v) => [v.version, v]));
  const latest = versions.length ? versions[versions.length - 1].version : 0;
  let left = state.diffLeft && byVersion[state.diffLeft] ? state.diffLeft : detail.active_version;
  let right = state.diffRight && byVersion[state.diffRight] ? state.diffRight : latest;
  if (left === right && versions.length > 1) left = versions[versions.length - 2].version;
  const pick = (id, value, set) => el("select", { id, onchange: (e) => { set(Number(e.target.value)); refresh(); } },
    versions.map((v) => el("option", { value: v.version, selected: v.version === value }, `v${v.version}${v.version === detail.active_version ? " (active)" : ""}`)));
  const [before, after] = diffColumns(byVersion[left]?.template || "", byVersion[right]?.template || "");
  const message = el("p", { id: "prompt-message", role: "status" }, state.promptMessage || "");
  state.promptMessage = "";

  async function act(action, version) {
    const reason = await confirmAction(
      action === "activate" ? `Make v${version} the active version of ${name}? New turns will use it at once.` : `Roll ${name} back to the version before v${detail.active_version}?`,
      action === "rollback",
    );
    if (reason === null) return;
    try {
      const body = action === "activate" ? { version } : { reason };
      await api(`/v1/prompts/${encodeURIComponent(name)}/${action}`, { method: "POST", body });
      state.promptMessage = action === "activate" ? `v${version} is now active.` : "Rolled back.";
    } catch (error) {
      state.promptMessage = `Not done: ${error.message}`;
    }
    refresh();
  }

  content.replaceChildren(
    el("div", { class: "grid" },
      card("Prompts", table(["prompt", "active", "versions", "experiment", "updated"], prompts.map((p) => [
        el("a", { href: "#prompts", class: "prompt-link", "data-name": p.name, onclick: (e) => { e.preventDefault(); state.prompt = p.name; state.diffLeft = state.diffRight = null; refresh(); } }, p.name),
        `v${p.active_version}`, p.versions, p.running_experiment_id ? `#${p.running_experiment_id}` : "—", when(p.updated_at),
      ]), [2])),
      card(`History of ${name}`, table(["when", "action", "version", "from", "by", "detail"], (detail.history || []).slice().reverse().slice(0, 12).map((h) => [when(h.at), h.action, `v${h.version}`, h.previous_version ? `v${h.previous_version}` : "—", h.actor || "—", h.detail || ""]))),
    ),
    card(
      `${name}: versions side by side`,
      message,
      el("div", {}, el("label", {}, "Left", pick("diff-left", left, (v) => (state.diffLeft = v))), el("label", {}, "Right", pick("diff-right", right, (v) => (state.diffRight = v)))),
      el("div", { class: "diff" }, before, after),
      el("p", {},
        versions.filter((v) => v.version !== detail.active_version).slice(-6).map((v) => el("button", { class: "secondary activate", "data-version": v.version, onclick: () => act("activate", v.version) }, `Activate v${v.version}`)),
        " ",
        el("button", { class: "danger", id: "rollback", disabled: !detail.rollback_version, title: detail.rollback_version ? `Make v${detail.rollback_version} active again` : "Nothing to roll back to: no version was active before this one", onclick: () => act("rollback") }, "Roll back"),
      ),
    ),
  );
}

// ---- Access log -------------------------------------------------------------

const ACCESS_PAGE_SIZE = 50;

// Names of customers by entity id, asked once per console session (each
// look is on the access log, so a refresh does not ask again).
async function customerNames(entityIds) {
  const names = (state.customerNames ||= {});
  const unknown = [...new Set(entityIds)].filter((id) => id && !(id in names)).slice(0, 100);
  if (unknown.length) {
    const reply = await api("/v1/customer-names", { method: "POST", body: { entity_ids: unknown } });
    for (const id of unknown) names[id] = null; // nobody: asked, not asked again
    for (const c of reply.data || []) names[c.entity_id] = c.name;
  }
  return names;
}

async function accessPage(content) {
  const filters = state.accessFilters || {};
  const cursors = (state.accessCursors ||= []); // the cursor of each page after the first
  const query = new URLSearchParams();
  // A customer is looked up once, when the filter is applied (that look is on
  // the log); the refreshes after it ask by the entity id it found.
  const found = filters.found;
  for (const name of ["who", "completion_id", "since", "until"]) if (filters[name]) query.set(name, filters[name]);
  if (found) query.set("entity_id", found[0]?.entity_id || "");
  else if (filters.customer) query.set("customer", filters.customer);
  query.set("limit", String(ACCESS_PAGE_SIZE));
  if (cursors.length) query.set("cursor", cursors[cursors.length - 1]);
  const nobody = found && !found.length;
  const reply = nobody ? { data: [], customers: [] } : await api(`/v1/access-log?${query}`);
  if (reply.customers && !found) filters.found = reply.customers;
  const names = await customerNames((reply.data || []).map((r) => r.entity_id));
  const field = (name, label, attrs = {}) => el("label", {}, label, el("input", { id: `access-${name}`, name, value: filters[name] || "", ...attrs }));
  const go = (next) => { state.accessCursors = next; refresh(); };
  const form = el(
    "form",
    { id: "access-filter", onsubmit: (e) => {
      e.preventDefault();
      const next = {};
      for (const name of ["customer", "who", "completion_id"]) next[name] = $(`#access-${name}`).value.trim();
      for (const name of ["since", "until"]) {
        const value = $(`#access-${name}`).value;
        next[name] = value ? new Date(value).toISOString() : "";
      }
      state.accessFilters = next;
      go([]);
    } },
    field("customer", "Customer (e-mail, client id, phone or entity id)", { size: 30 }),
    field("who", "Who (key/… or client/…)"),
    field("completion_id", "Completion id"),
    el("label", {}, "Since", el("input", { id: "access-since", type: "datetime-local", value: filters.since ? localTime(secondsOf(filters.since)).slice(0, 16).replace(" ", "T") : "" })),
    el("label", {}, "Until", el("input", { id: "access-until", type: "datetime-local", value: filters.until ? localTime(secondsOf(filters.until)).slice(0, 16).replace(" ", "T") : "" })),
    el("button", { type: "submit" }, "Filter"),
  );
  const customerCell = (id) => el("span", { class: "customer", title: id }, names[id] ? el("strong", {}, names[id]) : "", names[id] ? " " : "", el("code", {}, id));
  const rows = (reply.data || []).map((r) => [when(r.at), r.who, customerCell(r.entity_id), r.action, (r.field_kinds || []).join(", "), r.completion_id || "—", r.recorded_by]);
  const pageNumber = cursors.length + 1;
  const pager = el("p", { class: "pager" },
    el("button", { class: "secondary", id: "access-newest", disabled: !cursors.length, onclick: () => go([]) }, "Newest"),
    " ",
    el("button", { class: "secondary", id: "access-newer", disabled: !cursors.length, onclick: () => go(cursors.slice(0, -1)) }, "← Newer"),
    ` page ${pageNumber} `,
    el("button", { class: "secondary", id: "access-older", disabled: !reply.next_cursor, onclick: () => go([...cursors, reply.next_cursor]) }, "Older →"),
  );
  content.replaceChildren(
    form,
    ...(filters.found && !filters.found.length ? [el("p", { class: "muted", id: "access-nobody" }, `No customer matches ${filters.customer}.`)] : []),
    card(`Who looked at which customer (newest first, ${ACCESS_PAGE_SIZE} a page)`,
      rows.length ? table(["when", "who", "customer", "action", "what was read", "completion", "recorded by"], rows) : el("p", { class: "muted" }, "No look at a customer matches."),
      pager),
  );
}

// ---- Shell ------------------------------------------------------------------

async function refresh() {
  const page = PAGES[state.page];
  if (!page) return;
  clearTimeout(state.timer);
  // Each page is drawn off screen and shown only if no newer refresh (or
  // another page) started meanwhile, so a slow answer never overwrites a newer view.
  const generation = ++state.generation;
  const box = el("div");
  const charts = (state.drawing = []);
  try {
    await page.render(box);
    if (generation !== state.generation) {
      disposeCharts(charts);
      return;
    }
    disposeCharts();
    state.charts = charts;
    $("#content").replaceChildren(...box.childNodes);
    $("#page-error").hidden = true;
    $("#updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = `${state.page}:${Date.now()}`;
  } catch (error) {
    disposeCharts(charts);
    if (generation !== state.generation) return;
    if (error.status === 401) return signOut(error.message); // the key was revoked meanwhile
    $("#page-error").textContent = error.message;
    $("#page-error").hidden = false;
  }
  // A form being filled in or a dialog open is not redrawn under the operator.
  state.timer = setTimeout(function again() {
    const busy = $("#confirm").open || (document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName));
    if (document.hidden || busy) state.timer = setTimeout(again, REFRESH_MS);
    else refresh();
  }, REFRESH_MS);
}

function show(page) {
  if (!state.session) return;
  const allowed = state.session.pages;
  state.page = allowed.includes(page) ? page : allowed[0];
  for (const link of document.querySelectorAll("#nav a")) link.classList.toggle("active", link.dataset.page === state.page);
  $("#page-title").textContent = PAGES[state.page].title;
  document.body.dataset.page = state.page;
  $("#content").replaceChildren();
  refresh();
}

async function signIn(key) {
  sessionStorage.setItem(KEY, key);
  try {
    state.session = await api("/v1/console/session");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    const reason = error.status === 403 ? "This key cannot open the console: it lacks the admin scope." : error.status === 401 ? "This key is not valid." : error.message;
    $("#login-error").textContent = reason;
    $("#login-error").hidden = false;
    return;
  }
  $("#login").hidden = true;
  $("#page").hidden = false;
  $("#nav").hidden = false;
  $("#who").hidden = false;
  $("#key-id").textContent = `key ${state.session.key_id}`;
  $("#nav").replaceChildren(...state.session.pages.map((p) => el("a", { href: `#${p}`, "data-page": p }, PAGES[p].title)));
  show(location.hash.slice(1));
}

function signOut(message = "") {
  sessionStorage.removeItem(KEY);
  state.generation++; // nothing drawn for the old key after this
  clearTimeout(state.timer);
  disposeCharts();
  state.session = null;
  $("#page").hidden = true;
  $("#nav").hidden = true;
  $("#who").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
  $("#login-error").hidden = !message;
}

$("#login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  signIn($("#key").value.trim());
});
$("#sign-out").addEventListener("click", () => signOut());
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY));

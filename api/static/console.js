// The console: experiments, sources, model and jobs, for admins, on the same /v1 JSON API
// the rest of the service uses. Every number shown is the API's (formatted, never
// recomputed). Vanilla JS and the vendored Chart.js; text from the API is only ever put in
// the page as text (textContent), never as HTML.
"use strict";

const TOKEN_KEY = "newsfeed.console.token";
const VIEWS = ["experiments", "sources", "system", "inspector"];
const INSPECT_READS = 10;
const STOP_CONFIRM_MS = 5000;
const REINDEX_RECHECK_MS = 2000;

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  view: null,
  experiment: null, // the experiment whose results are shown
  rankers: null,
  charts: {},
  variantRows: 0,
};

class ApiError extends Error {
  constructor(status, body) {
    const error = (body && body.error) || {};
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code;
    this.details = error.details;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    const error = new ApiError(response.status, data);
    if (response.status === 401 || response.status === 403) signedOut(error);
    throw error;
  }
  return data;
}

// -- formatting (of the API's numbers)

const dash = "—";
const pct = (x, digits = 2) => (x == null ? dash : `${(x * 100).toFixed(digits)}%`);
const signedPct = (x) => (x == null ? dash : `${x >= 0 ? "+" : "−"}${Math.abs(x * 100).toFixed(1)}%`);
const range = (ci, format) => (ci ? `${format(ci.low)} to ${format(ci.high)}` : dash);
const count = (n) => (n == null ? dash : Number(n).toLocaleString("en"));
const share = (x) => (x == null ? dash : `${Math.round(x * 1000) / 10}%`);

function pValue(p) {
  if (p == null) return dash;
  return p < 0.001 ? "< 0.001" : p.toFixed(3);
}

const pIs = (p) => (p != null && p < 0.001 ? "p < 0.001" : `p = ${pValue(p)}`);

// A value with its interval under it (the intervals make the tables too wide on one line).
function withInterval(value, ci, format) {
  return [value, el("br"), el("small", {}, `(${range(ci, format)})`)];
}

const variantLabel = (v) => (v.is_control && v.name !== "control" ? `${v.name} (control)` : v.name);

function duration(seconds) {
  const s = Math.abs(seconds);
  if (s < 60) return `${Math.round(s)} s`;
  if (s < 3600) return `${Math.round(s / 60)} min`;
  if (s < 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

function toDate(value) {
  if (value == null) return null;
  return typeof value === "number" ? new Date(value * 1000) : new Date(value);
}

function relative(value) {
  const date = toDate(value);
  if (!date) return dash;
  const seconds = (date.getTime() - Date.now()) / 1000;
  if (Math.abs(seconds) < 5) return "now";
  return seconds < 0 ? `${duration(seconds)} ago` : `in ${duration(seconds)}`;
}

function timeCell(value) {
  const date = toDate(value);
  if (!date) return el("td", {}, dash);
  return el("td", {}, el("time", { datetime: date.toISOString(), title: date.toISOString() }, relative(value)));
}

// -- DOM

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value == null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat(Infinity)) {
    if (child == null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fill(tbody, rows, empty, columns) {
  tbody.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns }, empty))]));
  // Each cell names its column, for the stacked layout at phone width (console.css).
  // The content goes in one box, so that the label and it are the stacked cell's two parts.
  const headings = [...tbody.parentElement.tHead.rows[0].cells].map((cell) => cell.textContent);
  if (!rows.length) return;
  for (const row of tbody.rows) {
    [...row.cells].forEach((cell, i) => {
      cell.setAttribute("data-label", headings[i] || "");
      cell.replaceChildren(el("div", {}, ...cell.childNodes));
    });
  }
}

function badge(text, kind = text) {
  return el("span", { class: `badge ${kind}` }, text);
}

function say(id, message) {
  $(id).textContent = message;
}

function failure(id, error) {
  say(id, `${error.message}${error.code ? ` (${error.code})` : ""}`);
}

// A button that does one API action, busy meanwhile; errors go to the view's status.
function action(label, statusId, run, attrs = {}) {
  const button = el("button", { type: "button", class: "small", ...attrs }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await run(button);
    } catch (error) {
      failure(statusId, error);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return button;
}

// -- token

async function obtainToken() {
  const stored = localStorage.getItem(TOKEN_KEY);
  if (usable(stored) && claims(stored).admin) return stored;
  // Development mode only: the server hands out tokens (404 everywhere else).
  const response = await fetch("/dev/token?admin=true", { cache: "no-store" });
  if (response.ok) return (await response.json()).token;
  return null;
}

function signedIn(token) {
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  const who = claims(token).sub;
  say("who", `Signed in as ${who} (admin)`);
  $("token-form").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  route();
}

function signedOut(error) {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  for (const view of VIEWS) $(view).hidden = true;
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  say("who", "");
  $("token-form").hidden = false;
  say("token-error", error ? error.message : "");
  $("token-input").focus();
}

function setUpTokenForm() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!usable(token)) {
      say("token-error", "That is not a valid, unexpired token.");
      return;
    }
    if (!claims(token).admin) {
      say("token-error", "That token has no admin claim: the console needs an admin's token.");
      return;
    }
    $("token-input").value = "";
    signedIn(token);
  });
  $("sign-out").addEventListener("click", () => signedOut(null));
}

// -- routing: #experiments, #experiments/NAME (its results), #sources, #system

function route() {
  if (!state.token) return;
  const [view, name] = (location.hash.slice(1) || "experiments").split("/");
  const current = VIEWS.includes(view) ? view : "experiments";
  for (const id of VIEWS) $(id).hidden = id !== current;
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.view === current) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  state.view = current;
  if (current === "experiments") {
    const previous = state.experiment;
    state.experiment = name ? decodeURIComponent(name) : null;
    const focus = state.experiment !== null && state.experiment !== previous;
    loadExperiments().then(() => loadResults(state.experiment, focus));
  } else if (current === "sources") loadSources();
  else if (current === "inspector") showInspector(name ? decodeURIComponent(name) : null);
  else loadSystem();
}

// -- experiments

async function loadExperiments() {
  let body;
  try {
    body = await api("GET", "/v1/experiments");
  } catch (error) {
    failure("experiments-status", error);
    return;
  }
  say("experiments-status", "");
  const rows = body.experiments.map((e) =>
    el(
      "tr",
      { class: e.name === state.experiment ? "selected" : null, "data-name": e.name },
      el("th", { scope: "row" }, el("a", { href: `#experiments/${encodeURIComponent(e.name)}` }, e.name)),
      el("td", {}, badge(e.status)),
      el("td", {}, e.variants.map((v) => `${v.name} (${v.ranker}, ${v.weight})`).join(", ")),
      el("td", { class: "num" }, share(e.traffic)),
      timeCell(e.started_at),
      el("td", {}, el("div", { class: "actions" }, experimentActions(e))),
    ),
  );
  fill($("experiments-table").tBodies[0], rows, "No experiments yet: create one below.", 6);
}

function experimentActions(e) {
  const buttons = [
    el("a", { href: `#experiments/${encodeURIComponent(e.name)}`, class: "small", "aria-label": `Results of ${e.name}` }, "Results"),
  ];
  if (e.status === "draft") {
    buttons.push(
      action("Start", "experiments-status", async () => {
        await api("POST", `/v1/experiments/${encodeURIComponent(e.name)}/start`);
        say("experiments-status", `Started ${e.name}.`);
        await loadExperiments();
      }, { "aria-label": `Start ${e.name}` }),
    );
  }
  if (e.status === "running") {
    // Stopping is final: the first press asks, the second (within a few seconds) stops.
    let armed = 0;
    buttons.push(
      action("Stop", "experiments-status", async (button) => {
        if (Date.now() - armed > STOP_CONFIRM_MS) {
          armed = Date.now();
          button.textContent = "Confirm stop";
          button.classList.add("danger");
          say("experiments-status", `Press "Confirm stop" to stop ${e.name} for good.`);
          return;
        }
        await api("POST", `/v1/experiments/${encodeURIComponent(e.name)}/stop`);
        say("experiments-status", `Stopped ${e.name}.`);
        await loadExperiments();
        if (state.experiment === e.name) await loadResults(e.name, false);
      }, { "aria-label": `Stop ${e.name}` }),
    );
  }
  return buttons;
}

async function loadResults(name, focus) {
  const panel = $("results");
  if (!name) {
    panel.hidden = true;
    return;
  }
  const path = `/v1/experiments/${encodeURIComponent(name)}`;
  let results, series;
  try {
    [results, series] = await Promise.all([
      api("GET", `${path}/results`),
      api("GET", `${path}/exposures?interval=${$("exposure-interval").value}`),
    ]);
  } catch (error) {
    failure("experiments-status", error);
    panel.hidden = true;
    return;
  }
  panel.hidden = false;
  say("results-heading", `Results: ${results.experiment}`);
  const started = results.started_at ? `started ${relative(results.started_at)}` : "not started";
  const stopped = results.stopped_at ? `, stopped ${relative(results.stopped_at)}` : "";
  const users = results.variants.reduce((sum, v) => sum + v.users, 0);
  say("results-summary", `Status ${results.status}, ${started}${stopped}; ${count(users)} exposed users. ${srmLine(results.srm)}`);
  showSrm(results.srm, results.variants);
  renderResultsTable(results);
  say("results-method", `Lift and p-value: ${results.method}. CTR interval: ${results.ctr_ci_method}. For reference, a ${results.naive_method}.`);
  drawCtr(results);
  drawLift(results);
  state.series = series;
  drawExposures();
  if (focus) $("results-heading").focus();
}

function srmLine(srm) {
  if (srm.mismatch) return "";
  return `Sample-ratio check passed (${pIs(srm.p_value)}; flagged below ${srm.alpha}).`;
}

function showSrm(srm, variants) {
  const alert = $("srm-alert");
  alert.hidden = !srm.mismatch;
  if (!srm.mismatch) {
    alert.replaceChildren();
    return;
  }
  alert.replaceChildren(
    "Sample ratio mismatch: do not trust these results.",
    el(
      "p",
      {},
      `The exposed users per variant do not match the weights (chi-square ${srm.chi2.toFixed(1)}, ` +
        `${pIs(srm.p_value)}, flagged below ${srm.alpha}; expected ` +
        `${srm.expected.map((x) => Math.round(x)).join(" / ")} users, ` +
        `got ${variants.map((v) => v.users).join(" / ")}). ` +
        "Something drops or adds users unevenly (a crash, a redirect, a bot filter): find it before reading the lift.",
    ),
  );
}

function renderResultsTable(results) {
  const rows = results.variants.map((v) =>
    el(
      "tr",
      {},
      el("th", { scope: "row" }, variantLabel(v)),
      el("td", {}, v.ranker, Object.keys(v.params).length ? ` ${JSON.stringify(v.params)}` : ""),
      el("td", { class: "num" }, share(v.weight)),
      el("td", { class: "num" }, count(v.users)),
      el("td", { class: "num" }, count(v.pages)),
      el("td", { class: "num" }, count(v.impressions)),
      el("td", { class: "num" }, count(v.clicks)),
      el("td", { class: "num" }, withInterval(pct(v.ctr), v.ctr_ci, pct)),
      el("td", { class: "num" }, v.is_control ? dash : withInterval(signedPct(v.relative_lift), v.relative_lift_ci, signedPct)),
      el("td", { class: "num" }, v.is_control ? dash : [pValue(v.p_value), v.significant ? [el("br"), el("small", {}, "significant")] : null]),
    ),
  );
  fill($("results-table").tBodies[0], rows, "No variants.", 10);
}

// -- charts (Chart.js)

function palette() {
  const style = getComputedStyle(document.documentElement);
  const read = (name) => style.getPropertyValue(name).trim();
  return {
    text: read("--text"),
    muted: read("--muted"),
    line: read("--line"),
    series: [1, 2, 3, 4, 5, 6].map((n) => read(`--series-${n}`)),
  };
}

function chart(id, config) {
  if (state.charts[id]) state.charts[id].destroy();
  const colors = palette();
  window.Chart.defaults.color = colors.muted;
  window.Chart.defaults.borderColor = colors.line;
  window.Chart.defaults.font.family = getComputedStyle(document.body).fontFamily;
  config.options = {
    responsive: true,
    maintainAspectRatio: false,
    animation: false,
    ...config.options,
  };
  state.charts[id] = new window.Chart($(id), config);
}

// An interval plot: a floating bar from the interval's low to high, a mark at the estimate.
function intervalChart(id, labels, estimates, intervals, format, axisTitle, colors) {
  chart(id, {
    type: "bar",
    data: {
      labels,
      datasets: [
        {
          type: "bar",
          label: "95% interval",
          data: intervals.map((ci) => (ci ? [ci.low * 100, ci.high * 100] : null)),
          backgroundColor: colors.map((c) => `${c}40`),
          borderColor: colors,
          borderWidth: 1,
          barPercentage: 0.55,
        },
        {
          type: "line",
          label: "estimate",
          data: estimates.map((x) => (x == null ? null : x * 100)),
          showLine: false,
          pointStyle: "rectRot",
          pointRadius: 7,
          pointHoverRadius: 8,
          backgroundColor: colors,
          borderColor: colors,
        },
      ],
    },
    options: {
      indexAxis: "y",
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            label: (item) =>
              item.dataset.type === "bar"
                ? `95% interval: ${format(intervals[item.dataIndex].low)} to ${format(intervals[item.dataIndex].high)}`
                : `estimate: ${format(estimates[item.dataIndex])}`,
          },
        },
      },
      scales: {
        x: { title: { display: true, text: axisTitle }, ticks: { callback: (v) => `${v}%` } },
        y: { ticks: { autoSkip: false } },
      },
    },
  });
}

function drawCtr(results) {
  const colors = palette().series;
  const variants = results.variants;
  intervalChart(
    "ctr-chart",
    variants.map(variantLabel),
    variants.map((v) => v.ctr),
    variants.map((v) => v.ctr_ci),
    pct,
    "click-through rate",
    variants.map((_, i) => colors[i % colors.length]),
  );
  say("ctr-text", variants.map((v) => `${v.name}: CTR ${pct(v.ctr)}, 95% interval ${range(v.ctr_ci, pct)}`).join("; "));
}

function drawLift(results) {
  const colors = palette().series;
  const treatments = results.variants.filter((v) => !v.is_control);
  intervalChart(
    "lift-chart",
    treatments.map((v) => v.name),
    treatments.map((v) => v.relative_lift),
    treatments.map((v) => v.relative_lift_ci),
    signedPct,
    "relative lift vs control",
    treatments.map((_, i) => colors[(i + 1) % colors.length]),
  );
  say(
    "lift-text",
    treatments
      .map((v) => `${v.name}: lift ${signedPct(v.relative_lift)}, 95% interval ${range(v.relative_lift_ci, signedPct)}, ${pIs(v.p_value)}`)
      .join("; "),
  );
}

function bucketLabel(iso, interval) {
  const date = new Date(iso);
  if (interval === "day") return iso.slice(0, 10);
  return `${date.toLocaleDateString("en", { month: "short", day: "numeric" })} ${String(date.getHours()).padStart(2, "0")}:00`;
}

function drawExposures() {
  const series = state.series;
  if (!series) return;
  const measure = $("exposure-measure").value;
  const colors = palette().series;
  chart("exposure-chart", {
    type: "bar",
    data: {
      labels: series.starts.map((s) => bucketLabel(s, series.interval)),
      datasets: series.variants.map((v, i) => ({
        label: v.name,
        data: v[measure],
        backgroundColor: colors[i % colors.length],
        borderColor: colors[i % colors.length],
      })),
    },
    options: {
      plugins: { legend: { position: "bottom" } },
      scales: {
        x: { ticks: { maxRotation: 0, autoSkip: true } },
        y: {
          beginAtZero: true,
          title: { display: true, text: measure === "users" ? "users first exposed" : "pages served" },
          ticks: { precision: 0 },
        },
      },
    },
  });
  const totals = series.variants.map((v) => `${v.name} ${count(v[measure].reduce((a, b) => a + b, 0))}`);
  say("exposure-text", `${series.starts.length} buckets of one ${series.interval}; totals: ${totals.join(", ")}`);
}

// -- the new-experiment form

async function rankers() {
  if (!state.rankers) state.rankers = (await api("GET", "/v1/rankers")).rankers;
  return state.rankers;
}

async function addVariant(name, ranker) {
  const known = await rankers();
  const n = ++state.variantRows;
  const row = $("variant-template").content.firstElementChild.cloneNode(true);
  for (const label of row.querySelectorAll("label[data-for]")) {
    const field = row.querySelector(`[data-field="${label.dataset.for}"]`);
    field.id = `variant-${n}-${label.dataset.for}`;
    label.htmlFor = field.id;
  }
  const select = row.querySelector('[data-field="ranker"]');
  select.replaceChildren(...known.map((r) => el("option", { value: r.name }, r.name)));
  select.value = ranker;
  const hint = row.querySelector('[data-hint="params"]');
  hint.id = `variant-${n}-params-hint`;
  row.querySelector('[data-field="params"]').setAttribute("aria-describedby", hint.id);
  const describe = () => {
    const found = known.find((r) => r.name === select.value);
    const params = Object.entries(found ? found.params : {}).map(([k, v]) => `${k}=${v == null ? "off" : v}`);
    hint.textContent = `name=number, comma-separated; defaults: ${params.join(", ")}`;
  };
  select.addEventListener("change", describe);
  describe();
  row.querySelector('[data-field="name"]').value = name;
  row.querySelector(".remove").addEventListener("click", () => {
    row.remove();
    renumberVariants();
  });
  $("variant-list").append(row);
  renumberVariants();
  return row;
}

function renumberVariants() {
  const rows = [...$("variant-list").children];
  rows.forEach((row, i) => {
    const label = i === 0 ? "Remove this variant (the control)" : `Remove variant ${i + 1}`;
    const remove = row.querySelector(".remove");
    remove.setAttribute("aria-label", label);
    remove.hidden = rows.length <= 2; // an experiment has two variants at least
  });
}

function parseParams(text) {
  const params = {};
  for (const part of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [key, value, ...rest] = part.split("=").map((p) => p.trim());
    const number = Number(value);
    if (!key || value === undefined || value === "" || rest.length || !Number.isFinite(number)) {
      throw new Error(`"${part}" is not name=number`);
    }
    params[key] = number;
  }
  return params;
}

function readExperimentForm() {
  const form = $("experiment-form");
  const variants = [...$("variant-list").children].map((row, i) => {
    const field = (name) => row.querySelector(`[data-field="${name}"]`).value.trim();
    let params;
    try {
      params = parseParams(field("params"));
    } catch (error) {
      throw new Error(`Variant ${i + 1}: ${error.message}`);
    }
    return { name: field("name"), ranker: field("ranker"), params, weight: Number(field("weight")) };
  });
  return {
    name: form.elements.name.value.trim(),
    traffic: Number(form.elements.traffic.value),
    namespace: [Number(form.elements["ns-start"].value), Number(form.elements["ns-end"].value)],
    variants,
  };
}

function describeDetails(details) {
  if (!details) return "";
  const lines = [];
  const walk = (value, path) => {
    if (Array.isArray(value) && value.every((v) => typeof v === "string")) lines.push(`${path}: ${value.join(" ")}`);
    else if (value && typeof value === "object") for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
    else lines.push(`${path}: ${value}`);
  };
  walk(details, "");
  return lines.length ? ` ${lines.join("; ")}` : "";
}

function setUpExperimentForm() {
  const form = $("experiment-form");
  $("add-variant").addEventListener("click", async () => {
    const row = await addVariant(`variant-${$("variant-list").children.length + 1}`, "tfidf");
    row.querySelector("input").focus();
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say("experiment-form-status", "");
    let body;
    try {
      body = readExperimentForm();
    } catch (error) {
      say("experiment-form-status", error.message);
      return;
    }
    const submit = form.querySelector('button[type="submit"]');
    submit.disabled = true;
    try {
      const created = await api("POST", "/v1/experiments", body);
      say("experiments-status", `Created the draft ${created.name}: start it from the list.`);
      form.elements.name.value = "";
      await loadExperiments();
    } catch (error) {
      say("experiment-form-status", `${error.message}${describeDetails(error.details)}`);
    } finally {
      submit.disabled = false;
    }
  });
}

// -- sources

async function loadSources(keepStatus = false) {
  let body;
  try {
    body = await api("GET", "/v1/sources");
  } catch (error) {
    failure("sources-status", error);
    return;
  }
  const rows = body.sources.map((s) => {
    const st = s.state;
    const status = s.enabled ? st.last_status || "never polled" : "disabled";
    return el(
      "tr",
      { "data-id": s.id },
      el("th", { scope: "row", class: "url" }, s.url, el("br"), el("small", {}, s.categories.join(", "))),
      el("td", {}, badge(status, status.replace(/\s/g, "_"))),
      timeCell(st.last_polled_at),
      el("td", { class: "num" }, count(st.consecutive_failures)),
      s.enabled ? timeCell(st.next_poll_at) : el("td", {}, "not polled"),
      el("td", { class: "message" }, st.last_error || dash),
      el(
        "td",
        {},
        el(
          "div",
          { class: "actions" },
          action("Poll now", "sources-status", async () => {
            const outcome = await api("POST", `/v1/sources/${s.id}/poll`);
            const news = `${outcome.created.length} new, ${outcome.updated.length} updated, ${outcome.unchanged} unchanged`;
            say("sources-status", `Polled ${s.url}: ${outcome.status}${outcome.error ? ` (${outcome.error})` : `, ${news}`}.`);
            await loadSources(true);
          }, { "aria-label": `Poll ${s.url} now` }),
          action(s.enabled ? "Disable" : "Enable", "sources-status", async () => {
            await api("PATCH", `/v1/sources/${s.id}`, { enabled: !s.enabled });
            say("sources-status", `${s.enabled ? "Disabled" : "Enabled"} ${s.url}.`);
            await loadSources(true);
          }, { "aria-label": `${s.enabled ? "Disable" : "Enable"} ${s.url}` }),
        ),
      ),
    );
  });
  fill($("sources-table").tBodies[0], rows, "No sources registered (POST /v1/sources adds one).", 7);
  if (!keepStatus) say("sources-status", "");
}

// -- model and jobs

async function loadSystem() {
  let model, jobs;
  try {
    [model, jobs] = await Promise.all([api("GET", "/v1/model"), api("GET", "/v1/jobs")]);
  } catch (error) {
    failure("system-status", error);
    return;
  }
  renderModel(model);
  renderJobs(jobs);
}

function facts(id, pairs) {
  $(id).replaceChildren(...pairs.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function renderModel(m) {
  const degraded = m.max_lag_seconds > 0 && m.lag_seconds > m.max_lag_seconds;
  const lag = m.lag_versions
    ? [`${count(m.lag_versions)} corpus versions for ${duration(m.lag_seconds)} `, badge(degraded ? "degraded" : "catching up", degraded ? "degraded" : "queued")]
    : [badge("up to date", "ok")];
  const learned = m.learned || {};
  const serving = learned.serving ? `model ${learned.serving.version}` : "none (tfidf's weights)";
  const training = learned.last_training ? `; latest training: ${learned.last_training.reason}` : "";
  facts("model", [
    ["Version", m.model_version ? String(m.model_version) : "none fitted yet"],
    ["Fitted", m.fitted_at ? `${duration(m.age_seconds)} ago` : dash],
    ["Articles", `${count(m.model_articles)} in the model, ${count(m.articles)} in the corpus`],
    ["Corpus version", `${count(m.model_corpus_version)} fitted, ${count(m.corpus_version)} now`],
    ["Lag", lag],
    ["Who fits", m.reindex_mode === "queue" ? "a worker (queue mode)" : "the web processes (thread mode)"],
    ["Learned ranker", `${serving}${training}`],
  ]);
}

function renderJobs(jobs) {
  const c = jobs.counts;
  facts("job-counts", [
    ["Workers", count(c.workers)],
    ["Queued", count(c.queued)],
    ["Running", count(c.started)],
    ["Scheduled retries", count(c.scheduled)],
    ["Failed", c.failed ? [count(c.failed), " ", badge("failed")] : "0"],
    ["Finished (kept an hour)", count(c.finished)],
  ]);
  fill(
    $("active-jobs").tBodies[0],
    jobs.active.map((j) =>
      el("tr", {}, el("td", {}, badge(j.state === "started" ? "running" : "queued")), el("td", {}, j.description, el("br"), el("small", {}, j.id)), el("td", {}, j.queue), timeCell(j.started_at || j.enqueued_at)),
    ),
    "Nothing running or queued.",
    4,
  );
  fill(
    $("failed-jobs").tBodies[0],
    jobs.failed.map((j) => el("tr", {}, timeCell(j.ended_at), el("td", {}, j.description, el("br"), el("small", {}, j.id)), el("td", { class: "message" }, j.error))),
    "No failed jobs.",
    3,
  );
}

function setUpSystem() {
  $("reindex").addEventListener("click", async () => {
    const button = $("reindex");
    button.disabled = true;
    try {
      const answer = await api("POST", "/v1/jobs/reindex");
      say("system-status", answer.job_id ? `Reindex queued as job ${answer.job_id}.` : "This service is fitting a new model.");
      await loadSystem();
      setTimeout(() => state.view === "system" && loadSystem(), REINDEX_RECHECK_MS);
    } catch (error) {
      failure("system-status", error);
    } finally {
      button.disabled = false;
    }
  });
}

// -- the feed inspector: #inspector/USER

// What each part and factor of an explanation is, in words (docs/api.md, Explained feeds).
const PART_LABELS = {
  follow_similarity: "similarity to follows",
  follow_bonus: "followed-category bonus",
  history: "pull of their reading",
  baseline: "average article",
  freshness: "freshness",
  ctr: "click-through rate",
  similarity: "similarity",
  history_freshness: "reading freshness",
  outside_follows: "outside their follows",
  clicks: "clicks (decayed)",
  impressions: "impressions (decayed)",
};
const partLabel = (name) => PART_LABELS[name] || name.replace(/_/g, " ");
const number = (x) => (x == null ? dash : Number(x).toFixed(Math.abs(x) >= 100 ? 0 : 4));

async function fillRankerSelects() {
  const known = await rankers();
  for (const [id, fallback] of [["inspect-left", ""], ["inspect-right", "latest"]]) {
    const select = $(id);
    if (select.options.length > 1) continue;
    select.append(...known.map((r) => el("option", { value: r.name }, r.name)));
    select.value = known.some((r) => r.name === fallback) ? fallback : "";
  }
}

async function showInspector(user) {
  try {
    await fillRankerSelects();
  } catch (error) {
    failure("inspector-status", error);
    return;
  }
  if (user && $("inspect-user").value !== user) $("inspect-user").value = user;
  if (user) await inspect(user);
}

function explainPath(user, ranker, limit) {
  const query = new URLSearchParams({ explain: "true", limit: String(limit) });
  if (ranker) query.set("ranker", ranker);
  return `/v1/users/${encodeURIComponent(user)}/feed?${query}`;
}

async function inspect(user) {
  const limit = Number($("inspect-limit").value) || 10;
  const left = $("inspect-left").value;
  const right = $("inspect-right").value;
  say("inspector-status", `Ranking ${user}'s feed…`);
  let profile, pages;
  try {
    [profile, ...pages] = await Promise.all([
      api("GET", `/v1/users/${encodeURIComponent(user)}/profile?reads=${INSPECT_READS}`),
      api("GET", explainPath(user, left, limit)),
      api("GET", explainPath(user, right, limit)),
    ]);
  } catch (error) {
    failure("inspector-status", error);
    $("inspector-result").hidden = true;
    return;
  }
  renderReader(profile);
  renderExplained("left", left, pages[0], pages[1]);
  renderExplained("right", right, pages[1], pages[0]);
  $("inspector-result").hidden = false;
  say("inspector-status", `${user}: ${pages[0].items.length} items under each ranker.`);
}

function renderReader(profile) {
  say("reader-heading", `Reader: ${profile.user_id}`);
  facts("reader-facts", [
    ["Follows", profile.categories.length ? profile.categories.join(", ") : "nothing"],
    ["Reads the ranker sees", count(profile.reads_total)],
  ]);
  const reads = profile.reads.map((r) =>
    el("li", {}, r.title || `${r.id} (deleted)`, " ", el("small", {}, el("time", { datetime: r.at, title: r.at }, relative(r.at)))),
  );
  $("reader-reads").replaceChildren(...(reads.length ? reads : [el("li", { class: "hint" }, "No reads yet.")]));
}

function renderExplained(side, chosen, page, other) {
  const served = page.experiment ? `, experiment ${page.experiment} (${page.variant})` : "";
  say(`${side}-heading`, chosen ? `Ranker ${page.ranker}` : `As served: ${page.ranker}`);
  say(`${side}-meta`, `${chosen ? "Chosen here" : "The ranker serving this reader"}${served}; model ${page.model_version}.`);
  const elsewhere = new Map(other.items.map((item, i) => [item.id, i + 1]));
  // Bars share one scale per column: the largest part of any item is full width.
  const widest = Math.max(1e-12, ...page.items.flatMap((item) => item.explain.parts.map((p) => Math.abs(p.value))));
  const items = page.items.map((item, i) => {
    const there = elsewhere.get(item.id);
    const parts = item.explain.parts.map((p) => {
      const bar = el("span", { class: `bar${p.value < 0 ? " negative" : ""}`, "aria-hidden": "true" });
      bar.style.width = `${(Math.abs(p.value) / widest) * 100}%`;
      return el("tr", {}, el("th", { scope: "row" }, partLabel(p.name), el("span", { class: "track" }, bar)), el("td", {}, number(p.value)));
    });
    const factors = item.explain.factors.map((f) => `${partLabel(f.name)} ${number(f.value)}`).join(" · ");
    return el(
      "li",
      { class: "item" },
      el("p", { class: "title" }, el("a", { href: item.url, rel: "noopener noreferrer" }, item.title)),
      el("p", { class: "reason" }, item.reason),
      el("p", { class: "hint" }, `${item.categories.join(", ")} · `, there ? `#${there} under the other ranker` : "not in the other ranker's page"),
      el(
        "table",
        { class: "parts" },
        el("caption", { class: "visually-hidden" }, `Score parts of item ${i + 1}`),
        el("tbody", {}, parts),
        el("tfoot", {}, el("tr", {}, el("th", { scope: "row" }, "score"), el("td", {}, number(item.explain.total)))),
      ),
      factors ? el("p", { class: "factors" }, factors) : null,
    );
  });
  $(`${side}-items`).replaceChildren(...(items.length ? items : [el("li", { class: "hint" }, "Nothing to rank for this reader.")]));
}

function setUpInspector() {
  $("inspector-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("inspect-user");
    const user = input.value.trim();
    if (!user || !input.checkValidity()) {
      say("inspector-status", "Type a reader id: letters, digits and . _ : @ -, starting with a letter or digit.");
      input.focus();
      return;
    }
    const hash = `#inspector/${encodeURIComponent(user)}`;
    if (location.hash === hash) inspect(user);
    else location.hash = hash;
  });
}

// -- start

async function start() {
  setUpTokenForm();
  setUpExperimentForm();
  setUpSystem();
  setUpInspector();
  $("experiments-refresh").addEventListener("click", () => route());
  $("results-refresh").addEventListener("click", () => loadResults(state.experiment, false));
  $("sources-refresh").addEventListener("click", () => loadSources());
  $("system-refresh").addEventListener("click", () => loadSystem());
  $("exposure-interval").addEventListener("change", () => loadResults(state.experiment, false));
  $("exposure-measure").addEventListener("change", drawExposures);
  window.addEventListener("hashchange", route);
  const token = await obtainToken();
  if (!token) {
    signedOut(null);
    return;
  }
  signedIn(token);
  try {
    await addVariant("control", "tfidf");
    await addVariant("treatment", "latest");
  } catch (error) {
    say("experiment-form-status", error.message);
  }
}

document.addEventListener("DOMContentLoaded", start);

// The tta-host console: the caller's primitives, recent traces and one trace's waterfall,
// all from the API with the key the user entered (kept in this browser tab's session).
"use strict";

const $ = (id) => document.getElementById(id);
const KEY = "tta-key";
let previous = null;
let timer = null;
// Bumped with every change of key: an answer to a request made with another key is dropped.
let generation = 0;

function key() {
  return sessionStorage.getItem(KEY);
}

async function api(path) {
  const asked = generation;
  const response = await fetch(path, { headers: { authorization: "Bearer " + key() } });
  if (asked !== generation) throw new Error("stale");
  if (response.status === 401) {
    logout("That key was refused: enter a key the operator gave you.");
    throw new Error("unauthorized");
  }
  const body = await response.json();
  if (asked !== generation) throw new Error("stale");
  if (!response.ok) {
    throw new Error(body.detail || response.statusText);
  }
  return body;
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 1 ? (value * 1000).toFixed(0) + " µs" : value.toFixed(2) + " ms";
}

function count(n) {
  return Number(n).toLocaleString("en-US");
}

async function refreshStats() {
  const stats = await api("/v1/stats");
  $("tenant").textContent = "tenant " + stats.tenant;
  const now = performance.now();
  const body = $("primitives").tBodies[0];
  body.replaceChildren();
  for (const p of stats.primitives) {
    const calls = p.success + p.error;
    const before = previous && previous.values.get(p.name);
    const seconds = previous ? (now - previous.at) / 1000 : 0;
    const rate = before && seconds > 0 ? (calls - before.calls) / seconds : 0;
    const row = body.insertRow();
    cell(row, p.name);
    cell(row, count(calls), "num");
    cell(row, rate.toFixed(2), "num");
    cell(row, ms(p.p50_ms), "num");
    cell(row, ms(p.p99_ms), "num");
    cell(row, calls ? ((100 * p.error) / calls).toFixed(1) + " %" : "–", "num");
    cell(row, count(p.fuel), "num");
  }
  previous = {
    at: now,
    values: new Map(stats.primitives.map((p) => [p.name, { calls: p.success + p.error }])),
  };
}

async function refreshTraces() {
  const query = new URLSearchParams({ limit: "50" });
  if ($("f-name").value) query.set("primitive", $("f-name").value);
  if ($("f-status").value) query.set("status", $("f-status").value);
  if ($("f-min").value) query.set("min_duration_ms", $("f-min").value);
  const list = await api("/v1/traces?" + query);
  const body = $("traces").tBodies[0];
  body.replaceChildren();
  for (const t of list.traces) {
    const row = body.insertRow();
    row.dataset.traceId = t.trace_id;
    if (t.status !== "ok") row.className = "error";
    cell(row, new Date(t.start_unix_nano / 1e6).toLocaleTimeString());
    cell(row, (t.kind === "workflow" ? "workflow " : "") + t.name);
    cell(row, t.status === "ok" ? "ok" : t.error_type || "error");
    cell(row, ms(t.duration_ms), "num");
    cell(row, count(t.fuel), "num");
    cell(row, String(t.spans), "num");
    cell(row, t.trace_id.slice(0, 12) + "…");
    row.addEventListener("click", () => showTrace(t.trace_id).catch(report));
  }
}

function depthOf(span, byId) {
  let depth = 0;
  let parent = span.parent_span_id && byId.get(span.parent_span_id);
  while (parent && depth < 64) {
    depth += 1;
    parent = parent.parent_span_id && byId.get(parent.parent_span_id);
  }
  return depth;
}

// What a step decided, shown on its row: its attributes but its own name and kind, and
// the names of its events (a route taken, a breaker tripping, a compensation).
function decisions(span) {
  if (span.kind !== "step") return "";
  const own = Object.entries(span.attributes || {})
    .filter(([k]) => k !== "workflow.step" && k !== "workflow.step.kind")
    .map(([k, v]) => k + "=" + v);
  const events = (span.events || []).map((e) => "• " + e.name);
  return own.concat(events).join(" ");
}

function describe(span) {
  const lines = [span.name + "  (" + span.kind + ")", "fuel " + count(span.fuel) + ", own " + count(span.fuel_self)];
  if (span.error) lines.push("error: " + (span.error.message || span.error));
  for (const [k, v] of Object.entries(span.attributes || {})) lines.push(k + " = " + v);
  for (const e of span.events || []) lines.push("• event " + e.name + " " + JSON.stringify(e.attributes));
  for (const l of span.logs || []) lines.push("log " + l.level + " " + l.message);
  return lines.join("\n");
}

async function showTrace(id) {
  const trace = await api("/v1/traces/" + id);
  $("trace").hidden = false;
  $("trace-title").textContent =
    (trace.kind === "workflow" ? "workflow " : "") + trace.name + " · " + ms(trace.duration_ms) + " · fuel " + count(trace.fuel) + " · trace " + trace.trace_id;
  const spans = trace.span_list;
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const start = Math.min(...spans.map((s) => s.start_unix_nano));
  const end = Math.max(...spans.map((s) => s.start_unix_nano + s.duration_ns));
  const total = Math.max(end - start, 1);
  const waterfall = $("waterfall");
  waterfall.replaceChildren();
  for (const span of spans) {
    const row = document.createElement("div");
    row.className = "row span";
    row.dataset.spanId = span.span_id;
    const name = document.createElement("div");
    name.className = "name";
    name.style.paddingLeft = depthOf(span, byId) * 14 + "px";
    name.textContent = span.name;
    const decided = decisions(span);
    if (decided) {
      const note = document.createElement("span");
      note.className = "logs decision";
      note.textContent = decided;
      name.appendChild(note);
    }
    if (span.logs.length) {
      const logs = document.createElement("span");
      logs.className = "logs";
      logs.textContent = span.logs.length + " log" + (span.logs.length === 1 ? "" : "s");
      name.appendChild(logs);
    }
    const lane = document.createElement("div");
    lane.className = "lane";
    const bar = document.createElement("div");
    bar.className = "bar " + span.kind + (span.error ? " failed" : "");
    bar.style.left = ((100 * (span.start_unix_nano - start)) / total).toFixed(3) + "%";
    bar.style.width = ((100 * span.duration_ns) / total).toFixed(3) + "%";
    bar.title = ms(span.duration_ns / 1e6);
    lane.appendChild(bar);
    const fuel = document.createElement("div");
    fuel.className = "fuel";
    fuel.textContent = count(span.fuel) + " fuel";
    row.append(name, lane, fuel);
    row.addEventListener("click", () => ($("detail").textContent = describe(span)));
    waterfall.appendChild(row);
  }
  $("detail").textContent = describe(spans[0]);
  const download = $("download");
  download.hidden = !trace.recording;
  download.onclick = trace.recording ? () => saveRecording(trace.recording, trace.trace_id).catch(report) : null;
}

// The recording is fetched with the key (a plain link could not send it) and saved from
// the blob, under the name `tta-host replay` is shown in the docs with.
async function saveRecording(path, traceId) {
  const asked = generation;
  const response = await fetch(path, { headers: { authorization: "Bearer " + key() } });
  if (asked !== generation) return;
  if (!response.ok) throw new Error("the recording is gone (" + response.status + "): it was evicted by a newer one");
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = traceId + ".ttarec";
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

function report(error) {
  if (error.message !== "unauthorized" && error.message !== "stale") $("message").textContent = error.message;
}

async function refresh() {
  try {
    await refreshStats();
    await refreshTraces();
    $("message").textContent = "";
  } catch (error) {
    report(error);
  }
}

function login(value) {
  generation += 1;
  sessionStorage.setItem(KEY, value);
  $("login").hidden = true;
  $("logout").hidden = false;
  $("app").hidden = false;
  previous = null;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, 2000);
}

function logout(message) {
  generation += 1;
  sessionStorage.removeItem(KEY);
  clearInterval(timer);
  // Nothing seen with the old key stays on the page.
  $("primitives").tBodies[0].replaceChildren();
  $("traces").tBodies[0].replaceChildren();
  $("waterfall").replaceChildren();
  $("detail").textContent = "";
  $("trace").hidden = true;
  previous = null;
  $("login").hidden = false;
  $("logout").hidden = true;
  $("app").hidden = true;
  $("tenant").textContent = "";
  $("message").textContent = message || "";
}

$("login").addEventListener("submit", (event) => {
  event.preventDefault();
  if ($("key").value) login($("key").value);
  $("key").value = "";
});
$("logout").addEventListener("click", () => logout());
$("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  refreshTraces().catch(report);
});
if (key()) login(key());

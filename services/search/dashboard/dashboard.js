// The Watercooler dashboard: reads the search service's JSON view (/api/v1/...) with the
// viewer's bearer token and draws every chart as plain SVG (no third-party code, no CDN).
// Each chart element gets data-state="ready" and data-points=<n> once drawn (the browser
// test reads them), and the page refreshes itself every `refresh` seconds (default 15).
"use strict";

const params = new URLSearchParams(location.search);
const hash = new URLSearchParams(location.hash.slice(1));
const REFRESH = Math.max(2, Number(params.get("refresh") || 15));
const DAYS = 30;
const SVG = "http://www.w3.org/2000/svg";

// The token travels in the fragment (never sent to servers or logs), then lives in this tab only.
if (hash.get("token")) {
  sessionStorage.setItem("wc-token", hash.get("token"));
  history.replaceState(null, "", location.pathname + location.search);
}
const token = () => sessionStorage.getItem("wc-token") || "";

async function api(path, query) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== "") url.searchParams.set(k, v);
  const response = await fetch(url, { headers: { Authorization: `Bearer ${token()}` } });
  const body = await response.json();
  if (!response.ok) throw new Error(`${path}: ${body.error ? body.error.message + (body.error.field ? ` (${body.error.field})` : "") : response.status}`);
  return body;
}

function el(name, attrs, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (parent) parent.appendChild(node);
  return node;
}

function text(parent, x, y, content, attrs) {
  const node = el("text", { x, y, ...(attrs || {}) }, parent);
  node.textContent = content;
  return node;
}

const fmt = (n) => (Math.abs(n) >= 1e6 ? (n / 1e6).toFixed(1) + "M" : Math.abs(n) >= 1e4 ? (n / 1e3).toFixed(1) + "k" : Number.isInteger(n) ? String(n) : n.toFixed(2));

function frame(container, points) {
  container.innerHTML = "";
  container.dataset.points = String(points);
  container.dataset.state = "ready";
  if (!points) {
    const empty = document.createElement("div");
    empty.className = "empty";
    empty.textContent = "nothing yet";
    container.appendChild(empty);
    return null;
  }
  const w = container.clientWidth || 300, h = container.clientHeight || 180;
  return { svg: el("svg", { viewBox: `0 0 ${w} ${h}`, preserveAspectRatio: "none" }, container), w, h };
}

// Vertical bars (or a line) over time: points = [{t: Date, v: number}].
function timeChart(container, points, kind, opts) {
  const nonZero = points.filter((p) => p.v !== 0).length;
  const f = frame(container, nonZero ? points.length : 0);
  if (!f) return;
  const { svg, w, h } = f;
  const left = 34, bottom = 18, top = 8;
  const lo = Math.min(0, ...points.map((p) => p.v)), hi = Math.max(opts && opts.symmetric ? 0.05 : 1, ...points.map((p) => p.v));
  const min = opts && opts.symmetric ? -Math.max(Math.abs(lo), hi) : lo, max = opts && opts.symmetric ? Math.max(Math.abs(lo), hi) : hi;
  const y = (v) => top + (h - top - bottom) * (1 - (v - min) / (max - min || 1));
  const step = (w - left) / points.length;
  el("line", { class: "axis", x1: left, x2: w, y1: y(0), y2: y(0) }, svg);
  text(svg, 0, y(max) + 8, fmt(max));
  text(svg, 0, y(min), fmt(min));
  const label = (p) => (opts && opts.hours ? p.t.toISOString().slice(11, 16) : p.t.toISOString().slice(5, 10));
  text(svg, left, h - 4, label(points[0]));
  text(svg, w - 36, h - 4, label(points[points.length - 1]));
  if (kind === "bar") {
    points.forEach((p, i) => {
      const bar = el("rect", { class: "bar" + (p.v < 0 ? " negative" : ""), x: left + i * step + 1, width: Math.max(1, step - 2), y: Math.min(y(p.v), y(0)), height: Math.abs(y(p.v) - y(0)) }, svg);
      el("title", {}, bar).textContent = `${label(p)}: ${fmt(p.v)}`;
    });
  } else {
    const xy = points.map((p, i) => [left + i * step + step / 2, y(p.v)]);
    el("polyline", { class: "line", points: xy.map((q) => q.join(",")).join(" ") }, svg);
    xy.forEach(([cx, cy], i) => {
      const dot = el("circle", { class: "point" + (points[i].v < 0 ? " negative" : ""), cx, cy, r: 3 }, svg);
      el("title", {}, dot).textContent = `${label(points[i])}: ${fmt(points[i].v)}`;
    });
  }
}

// Horizontal bars: items = [{label, v}].
function rankChart(container, items) {
  const f = frame(container, items.length);
  if (!f) return;
  const { svg, w, h } = f;
  const rows = items.slice(0, 8), rowH = Math.min(22, h / rows.length), labelW = Math.min(150, w * 0.45);
  const max = Math.max(...rows.map((r) => r.v), 1);
  rows.forEach((r, i) => {
    const yy = i * rowH;
    const name = r.label.length > 24 ? r.label.slice(0, 23) + "…" : r.label;
    text(svg, 0, yy + rowH * 0.7, name, { class: "label" });
    const width = Math.max(2, (w - labelW - 40) * (r.v / max));
    const bar = el("rect", { class: "bar", x: labelW, y: yy + 3, height: rowH - 6, width }, svg);
    el("title", {}, bar).textContent = `${r.label}: ${fmt(r.v)}`;
    text(svg, labelW + width + 4, yy + rowH * 0.7, fmt(r.v), { class: "value" });
  });
}

function dayRange() {
  const end = new Date();
  end.setUTCHours(0, 0, 0, 0);
  end.setUTCDate(end.getUTCDate() + 1);
  const start = new Date(end.getTime() - DAYS * 86400e3);
  return { start_time: start.toISOString().replace(".000", ""), end_time: end.toISOString().replace(".000", "") };
}

const series = (stats) => (stats.series || []).map((p) => ({ t: new Date(p.start_time), v: Number(p.value) }));
const $ = (id) => document.getElementById(id);

async function pulse() {
  const range = dayRange();
  const stat = (metric, extra) => api("/api/v1/stats", { metric, interval: "day", ...range, ...(extra || {}) });
  const [blogs, active, posts, views, downloads, people, trending] = await Promise.all([
    api("/api/v1/stats", { metric: "blogs" }), stat("active_blogs"), stat("posts"), stat("wiki_views", { top_size: 8 }),
    stat("media_downloads", { top_size: 8 }), api("/api/v1/stats", { metric: "people" }), api("/api/v1/trending", { kinds: "tags", page_size: 8 }),
  ]);
  const kpis = { blogs, active_blogs: active, posts, wiki_views: views, media_downloads: downloads, people };
  for (const [name, s] of Object.entries(kpis)) document.querySelector(`[data-kpi="${name}"] b`).textContent = fmt(Number(s.total || 0));
  timeChart($("chart-posts"), series(posts), "bar");
  timeChart($("chart-views"), series(views), "line");
  rankChart($("chart-top-pages"), (views.top || []).map((t) => ({ label: t.title || t.name, v: Number(t.value) })));
  timeChart($("chart-downloads"), series(downloads), "bar");
  rankChart($("chart-trending"), (trending.items || []).map((i) => ({ label: i.value, v: Number(i.last_day) })));
  timeChart($("chart-active-blogs"), series(active), "bar");
}

async function jamBoard() {
  const select = $("jam-select");
  const { jams } = await api("/api/v1/jams");
  const wanted = select.value || params.get("jam") || (jams[0] && jams[0].name) || "";
  select.innerHTML = "";
  for (const j of jams) {
    const option = document.createElement("option");
    option.value = j.name;
    option.textContent = `${j.title || j.name} (${j.participants} participants)`;
    select.appendChild(option);
  }
  select.value = wanted;
  if (!wanted) {
    for (const id of ["chart-leaderboard", "chart-jam-votes", "chart-jam-participants", "chart-jam-tone"]) frame($(id), 0);
    return;
  }
  const id = wanted.split("/")[1];
  const hourly = (metric) => api("/api/v1/stats", { metric, jam: wanted, interval: "hour" });
  const [board, votes, participants, tone] = await Promise.all([
    api(`/api/v1/jams/${encodeURIComponent(id)}/leaderboard`, { page_size: 8 }), hourly("jam_votes"), hourly("jam_participants"), hourly("jam_tone"),
  ]);
  rankChart($("chart-leaderboard"), (board.rows || []).map((r) => ({ label: `${r.rank}. ${r.title}`, v: Number(r.votes) })));
  timeChart($("chart-jam-votes"), series(votes), "bar", { hours: true });
  timeChart($("chart-jam-participants"), series(participants), "line", { hours: true });
  timeChart($("chart-jam-tone"), series(tone), "bar", { hours: true, symmetric: true });
}

async function refresh() {
  const status = $("status");
  if (!token()) {
    $("login").hidden = false;
    status.textContent = "sign in";
    return;
  }
  try {
    await Promise.all([pulse(), jamBoard()]);
    status.className = "status";
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1);
  } catch (error) {
    status.className = "status error";
    status.textContent = String(error.message || error);
  }
}

$("login-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem("wc-token", $("token").value.trim());
  $("login").hidden = true;
  refresh();
});
$("jam-select").addEventListener("change", refresh);
$("refresh-seconds").textContent = String(REFRESH);
refresh();
setInterval(refresh, REFRESH * 1000);

import type { Lifecycle } from '@tidings/core';
import type { MonitorMode } from './monitor.js';

/** Text safe inside HTML. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
:root { --ink: #101828; --muted: #667085; --line: #eaecf0; --blue: #175cd3; --green: #067647; --orange: #b54708; --red: #b42318; --bg: #f9fafb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: var(--ink); background: var(--bg); }
header { padding: 14px 24px; background: #fff; border-bottom: 1px solid var(--line); display: flex; gap: 16px; align-items: baseline; flex-wrap: wrap; }
header h1 { font-size: 18px; margin: 0; }
header .mode { color: var(--muted); flex: 1; min-width: 300px; }
header a { color: var(--blue); }
#status { padding: 8px 24px; color: var(--red); display: none; }
main { padding: 16px 24px; display: grid; gap: 16px; }
.empty { color: var(--muted); }
section.topic { background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px; display: grid; grid-template-columns: minmax(240px, 340px) 1fr; gap: 16px; }
section.topic > h2 { grid-column: 1 / -1; margin: 0; font-size: 16px; display: flex; gap: 10px; align-items: baseline; }
section.topic > h2 .lifecycle { font-weight: normal; color: var(--muted); font-size: 13px; }
.subs { grid-column: 1 / -1; display: flex; gap: 6px; flex-wrap: wrap; align-items: stretch; }
.subs > span { color: var(--muted); font-size: 12px; align-self: center; }
.subs button.sub { display: grid; gap: 1px; text-align: left; padding: 4px 10px; border-color: var(--line); color: var(--ink); }
.subs button.sub b { font-weight: 600; }
.subs button.sub small { color: var(--muted); font-size: 11.5px; }
.subs button.sub[aria-selected="true"] { border-color: var(--blue); box-shadow: inset 0 -2px 0 var(--blue); }
.subs button.sub .dead { color: var(--red); }
.diagram .caption { font-size: 12px; color: var(--muted); margin: 0 0 4px; }
.diagram svg { width: 100%; height: auto; max-height: 480px; }
.diagram .count rect { fill: #f2f4f7; stroke: #98a2b3; }
.diagram .count text { font: 600 13px system-ui, sans-serif; fill: var(--ink); }
.diagram .count.some rect { fill: var(--blue); stroke: var(--blue); }
.diagram .count.some text { fill: #fff; }
.diagram .count.dead.some rect { fill: var(--red); stroke: var(--red); }
.panels { display: grid; gap: 12px; align-content: start; min-width: 0; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); gap: 12px; }
.chart h3, .panels h3 { margin: 0 0 4px; font-size: 13px; color: var(--muted); font-weight: 600; }
.chart svg { width: 100%; height: 90px; background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 12px; flex-wrap: wrap; }
.legend b { font-weight: 600; }
.s1 { color: var(--blue); stroke: var(--blue); } .s2 { color: var(--green); stroke: var(--green); } .s3 { color: var(--orange); stroke: var(--orange); }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; padding: 4px 6px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
td.id, td.token { font-family: ui-monospace, Menlo, monospace; word-break: break-all; }
td.error { color: var(--red); max-width: 360px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
button { font: inherit; font-size: 12px; padding: 2px 10px; border-radius: 6px; border: 1px solid var(--blue); background: #fff; color: var(--blue); cursor: pointer; }
button:disabled { opacity: .5; cursor: default; }
.notice { font-size: 12px; color: var(--green); min-height: 1em; }
.notice.failed { color: var(--red); }
ol.transitions { margin: 0; padding: 0; list-style: none; font: 12px ui-monospace, Menlo, monospace; max-height: 170px; overflow: auto; }
.none { color: var(--muted); font-size: 12px; }
@media (max-width: 760px) { section.topic { grid-template-columns: 1fr; } }
`;

// Plain browser JavaScript, no build step and no network: the page must work where the dashboard runs offline.
const SCRIPT = `
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, attrs = {}, ...children) => { const e = document.createElement(tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); for (const c of children) e.append(c); return e; };
const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs = {}) => { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
const fmtTime = (ms) => new Date(ms).toLocaleTimeString([], { hour12: false }) + '.' + String(ms % 1000).padStart(3, '0');
const fmtLatency = (s) => s === undefined ? '–' : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 0) + ' ms' : s < 120 ? s.toFixed(1) + ' s' : (s / 60).toFixed(1) + ' min';
const cards = new Map();
let lastSnapshot;

function card(topic) {
  let c = cards.get(topic.name);
  if (c && c.lifecycle === topic.lifecycle) return c;
  if (c) c.root.remove();
  const root = el('section', { class: 'topic', 'data-topic': topic.name });
  const about = !topic.lifecycle ? 'lifecycle not recorded' : topic.lifecycle + (topic.ordering && topic.ordering !== 'none' ? ' · ordered by key (' + topic.ordering + ')' : '') + (topic.deadLetter ? ' · dead letters copied to ' + topic.deadLetter : '');
  root.append(el('h2', {}, topic.name, el('span', { class: 'lifecycle' }, about)));
  root.append(el('div', { class: 'subs', role: 'tablist', 'aria-label': 'Subscriptions of ' + topic.name }));
  const diagram = el('div', { class: 'diagram' });
  diagram.append(el('p', { class: 'caption' }));
  const template = topic.lifecycle && document.getElementById('diagram-' + topic.lifecycle);
  if (template) diagram.append(template.content.cloneNode(true));
  else diagram.append(el('p', { class: 'none' }, 'No diagram: no process has recorded this topic\\'s lifecycle yet.'));
  const panels = el('div', { class: 'panels' });
  root.append(diagram, panels);
  panels.innerHTML = '<div class="charts"><div class="chart throughput"><h3></h3><svg viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></div>' +
    '<div class="chart latency"><h3></h3><svg viewBox="0 0 300 90" preserveAspectRatio="none"></svg><div class="legend"></div></div></div>' +
    '<div class="dead"><h3></h3><div class="notice"></div><div class="body"></div></div>' +
    '<div class="leases"><h3></h3><div class="body"></div></div>' +
    '<div class="recent"><h3>Recent transitions</h3><div class="body"></div></div>';
  $('main').append(root);
  // Badges go on after the SVG is in the document: only then do its shapes have a size.
  for (const node of root.querySelectorAll('g.node[data-state]')) {
    const box = node.getBBox();
    const badge = svgEl('g', { class: 'count' + (node.dataset.state === 'dead' ? ' dead' : ''), 'data-x': box.x + box.width, 'data-y': box.y });
    badge.append(svgEl('rect', { rx: 9, ry: 9, height: 18 }), svgEl('text', { 'text-anchor': 'middle' }));
    node.append(badge);
  }
  c = { root, lifecycle: topic.lifecycle, selected: undefined };
  cards.set(topic.name, c);
  return c;
}

// The subscription whose copies the card shows: the one picked, else the default one, else the first.
function shown(c, topic) {
  const subs = topic.subscriptions ?? [];
  const pick = subs.find((x) => x.name === c.selected) ?? subs.find((x) => x.name === 'default') ?? subs[0];
  return pick ?? { name: undefined, counts: topic.counts, deadLetters: topic.deadLetters, leases: topic.leases };
}

function summary(topic, sub) {
  const n = (state) => (state ? sub.counts[state] ?? 0 : 0);
  const parts = [n(topic.ready) + ' waiting', n(topic.leased) + ' leased'];
  const dead = sub.counts.dead ?? 0;
  return el('small', {}, parts.join(' · '), ...(dead ? [' · ', el('span', { class: 'dead' }, dead + ' dead')] : []));
}

// Tabs are kept and updated in place, not rebuilt each second, so a click or the focus is never lost to a redraw.
function drawSubscriptions(c, topic, sub) {
  const bar = $('.subs', c.root);
  const subs = topic.subscriptions ?? [];
  const label = subs.length === 0 ? 'No subscriptions: messages stored now are kept by none.' : subs.length === 1 ? 'Subscription' : subs.length + ' subscriptions';
  let head = $(':scope > span', bar);
  if (!head) bar.append(head = el('span', {}));
  if (head.textContent !== label) head.textContent = label;
  const names = new Set(subs.map((x) => x.name));
  for (const b of bar.querySelectorAll('button.sub')) if (!names.has(b.dataset.subscription)) b.remove();
  for (const x of subs) {
    let b = [...bar.querySelectorAll('button.sub')].find((e) => e.dataset.subscription === x.name);
    if (!b) {
      b = el('button', { class: 'sub', role: 'tab', 'data-subscription': x.name }, el('b', {}, x.name), el('small', {}));
      b.onclick = () => { c.selected = x.name; render(lastSnapshot); };
      bar.append(b);
    }
    b.setAttribute('aria-selected', String(x.name === sub.name));
    b.title = x.maxDeliveries === undefined ? '' : 'max deliveries ' + x.maxDeliveries + (x.deadLetter ? ', dead letters copied to ' + x.deadLetter : '');
    $('small', b).replaceWith(summary(topic, x));
  }
}

function drawCounts(root, counts) {
  for (const badge of root.querySelectorAll('g.node[data-state] .count')) {
    const n = counts[badge.parentNode.dataset.state] ?? 0;
    const text = badge.querySelector('text');
    if (text.textContent !== String(n)) text.textContent = String(n);
    const width = Math.max(20, 10 + 8 * String(n).length);
    const x = Number(badge.dataset.x), y = Number(badge.dataset.y);
    const rect = badge.querySelector('rect');
    rect.setAttribute('width', width); rect.setAttribute('x', x - width + 8); rect.setAttribute('y', y - 10);
    text.setAttribute('x', x - width / 2 + 8); text.setAttribute('y', y + 3.5);
    badge.classList.toggle('some', n > 0);
  }
}

function chart(box, title, series, points) {
  $('h3', box).textContent = title;
  const svg = $('svg', box);
  svg.replaceChildren();
  const values = series.flatMap((s) => points.map((p) => p[s.key]).filter((v) => v !== undefined));
  const max = Math.max(1e-9, ...values.map(Math.abs));
  const min = Math.min(0, ...values);
  const span = max - min || 1;
  const x = (i) => (300 * i) / Math.max(1, points.length - 1);
  const y = (v) => 86 - (82 * (v - min)) / span;
  for (const s of series) {
    let d = '';
    points.forEach((p, i) => { if (p[s.key] !== undefined) d += (d ? ' L' : 'M') + x(i).toFixed(1) + ',' + y(p[s.key]).toFixed(1); });
    if (d) svg.append(svgEl('path', { d, class: s.cls, fill: 'none', 'stroke-width': 1.6, 'vector-effect': 'non-scaling-stroke' }));
  }
  const last = points[points.length - 1] ?? {};
  $('.legend', box).replaceChildren(...series.map((s) => el('span', { class: s.cls }, s.label + ' ', el('b', {}, s.fmt(last[s.key])))), el('span', {}, 'max ' + series[0].fmt(values.length ? Math.max(...values) : 0)));
}

function table(headers, rows) {
  const t = el('table', {}, el('tr', {}, ...headers.map((h) => el('th', {}, h))));
  for (const r of rows) t.append(r);
  return t;
}

async function redrive(topic, subscription, ids, button) {
  const c = cards.get(topic);
  const notice = $('.dead .notice', c.root);
  button.disabled = true;
  try {
    const body = { topic };
    if (subscription !== undefined) body.subscription = subscription;
    if (ids) body.ids = ids;
    const res = await fetch('api/redrive', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error ? answer.error.message : res.statusText);
    notice.className = 'notice';
    notice.textContent = 'Redrove ' + answer.redriven + ' message' + (answer.redriven === 1 ? '' : 's') + (answer.missing.length ? '; not dead letters (any more): ' + answer.missing.join(', ') : '') + '.';
  } catch (error) {
    notice.className = 'notice failed';
    notice.textContent = 'Redrive failed: ' + error.message;
    button.disabled = false;
  }
}

function render(s) {
  lastSnapshot = s;
  const status = $('#status');
  status.style.display = s.error ? 'block' : 'none';
  status.textContent = s.error ? 'Storage did not answer the last poll: ' + s.error : '';
  $('#empty').style.display = s.topics.length ? 'none' : 'block';
  const seen = new Set();
  for (const t of s.topics) {
    seen.add(t.name);
    const c = card(t);
    const { root } = c;
    const sub = shown(c, t);
    drawSubscriptions(c, t, sub);
    const of = sub.name === undefined ? '' : ' of ' + sub.name;
    $('.diagram .caption', root).textContent = sub.name === undefined ? 'Messages per state' : 'Copies per state in subscription ' + sub.name;
    drawCounts(root, sub.counts);
    if (s.mode === 'in-process') {
      chart($('.throughput', root), 'Throughput (messages/s)', [
        { key: 'sent', label: 'stored', cls: 's1', fmt: (v) => v === undefined ? '–' : String(v) },
        { key: 'delivered', label: 'delivered', cls: 's2', fmt: (v) => v === undefined ? '–' : String(v) },
      ], t.series);
    } else {
      chart($('.throughput', root), 'Waiting and in flight (net change per second)', [
        { key: 'waiting', label: 'waiting', cls: 's1', fmt: (v) => v === undefined ? '–' : String(v) },
        { key: 'inFlight', label: 'in flight', cls: 's3', fmt: (v) => v === undefined ? '–' : String(v) },
        { key: 'net', label: 'net/s', cls: 's2', fmt: (v) => v === undefined ? '–' : (v > 0 ? '+' : '') + v },
      ], t.series);
    }
    chart($('.latency', root), s.mode === 'in-process' ? 'End-to-end latency (stored → handler start)' : 'Age of the oldest waiting message', [
      { key: 'p50', label: s.mode === 'in-process' ? 'p50' : 'age', cls: 's1', fmt: fmtLatency },
      ...(s.mode === 'in-process' ? [{ key: 'p95', label: 'p95', cls: 's3', fmt: fmtLatency }] : []),
    ], t.series);
    $('.dead h3', root).textContent = 'Dead letters' + of;
    $('.leases h3', root).textContent = 'Leases in flight' + of;
    const dead = sub.deadLetters;
    const deadBody = $('.dead .body', root);
    const total = sub.counts.dead ?? 0;
    if (!dead.length) deadBody.replaceChildren(el('p', { class: 'none' }, t.redrivable ? 'None.' : 'None: ' + (t.lifecycle ?? 'this topic') + ' never dead-letters.'));
    else {
      const all = el('button', { 'data-redrive-all': t.name }, 'Redrive all ' + total);
      all.onclick = () => redrive(t.name, sub.name, undefined, all);
      deadBody.replaceChildren(table(['id', 'deliveries', 'created', 'last error', ''], dead.map((m) => {
        const b = el('button', { 'data-redrive-id': m.id }, 'Redrive');
        b.onclick = () => redrive(t.name, sub.name, [m.id], b);
        const first = (m.lastError ?? '').split('\\n')[0];
        return el('tr', { 'data-id': m.id }, el('td', { class: 'id' }, m.id), el('td', {}, String(m.deliveries)), el('td', {}, fmtTime(m.createdAt)), el('td', { class: 'error', title: m.lastError ?? '' }, first), el('td', {}, b));
      })), el('p', { class: 'none' }, total > dead.length ? 'Showing ' + dead.length + ' of ' + total + '. ' : ''), all);
    }
    const leases = sub.leases;
    $('.leases .body', root).replaceChildren(!leases.length ? el('p', { class: 'none' }, 'None.') : table(['id', 'holder (lease token)', 'deadline', 'delivery'], leases.map((l) => {
      const left = l.leaseUntil === undefined ? undefined : (l.leaseUntil - s.at) / 1000;
      return el('tr', {}, el('td', { class: 'id' }, l.id), el('td', { class: 'token' }, l.leaseToken ?? '–'), el('td', {}, left === undefined ? '–' : left >= 0 ? 'in ' + left.toFixed(1) + ' s' : 'expired ' + (-left).toFixed(1) + ' s ago'), el('td', {}, String(l.deliveries)));
    })));
    $('.recent .body', root).replaceChildren(s.mode !== 'in-process' ? el('p', { class: 'none' }, 'Seen only by the processes that make them: mount the dashboard in the application to list them.') :
      !t.transitions.length ? el('p', { class: 'none' }, 'None since the dashboard started.') :
      el('ol', { class: 'transitions' }, ...t.transitions.map((e) => el('li', {}, fmtTime(e.at) + '  ' + e.id + (e.subscription ? '  [' + e.subscription + ']' : '') + '  ' + e.from + ' -' + e.event + '-> ' + e.to))));
  }
  for (const [name, c] of cards) if (!seen.has(name)) { c.root.remove(); cards.delete(name); }
  document.body.dataset.updated = String(s.at);
}

const source = new EventSource('events');
source.onmessage = (e) => render(JSON.parse(e.data));
source.onerror = () => { const st = $('#status'); st.style.display = 'block'; st.textContent = 'Connection to the dashboard lost; retrying…'; };
`;

/** The dashboard page: every byte inline (styles, script, diagrams), so it works with no network at all. */
export function dashboardPage(o: { title: string; mode: MonitorMode; latency: boolean; diagrams: Array<[Lifecycle, string]> }): string {
  const note =
    o.mode === 'in-process'
      ? `Live from this process: counts from storage each second; throughput and recent transitions from its events${
          o.latency
            ? ', latency from its handler hook.'
            : '. End-to-end latency needs the handler hook: pass metricsPlugin() to Tidings.create({ plugins }) and to createDashboard({ metrics }).'
        }`
      : 'Standalone on a database other processes use: every figure comes from counts polled each second. Throughput is the net change of waiting and in-flight messages, latency the age of the oldest waiting message, and transitions are not visible from here.';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(o.title)}</title>
<link rel="icon" href="data:,">
<style>${STYLE}</style>
</head>
<body data-mode="${o.mode}">
<header><h1>${escapeHtml(o.title)}</h1><span class="mode">${escapeHtml(note)}</span><a href="metrics">/metrics</a></header>
<div id="status"></div>
<main><p id="empty" class="empty">No topics yet: declare one (tidings.topic) and it appears here.</p></main>
${o.diagrams.map(([lifecycle, svg]) => `<template id="diagram-${lifecycle}">${svg}</template>`).join('\n')}
<script>${SCRIPT}</script>
</body>
</html>
`;
}

/** The page a browser gets without the token: a form that sets the login cookie. */
export function loginPage(o: { title: string; failed: boolean; reason?: string }): string {
  return `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(o.title)}: sign in</title><link rel="icon" href="data:,">
<style>${STYLE} form { max-width: 380px; margin: 12vh auto; background: #fff; border: 1px solid var(--line); border-radius: 10px; padding: 20px; display: grid; gap: 10px; } input { font: inherit; padding: 6px 8px; border: 1px solid #d0d5dd; border-radius: 6px; } .failed { color: var(--red); }</style>
</head>
<body>
<form method="post" action="login">
<h1 style="font-size:18px;margin:0">${escapeHtml(o.title)}</h1>
<label for="token">This dashboard needs its token.</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
${o.failed ? `<p class="failed">${escapeHtml(o.reason ?? 'That is not the token.')}</p>` : ''}
<button type="submit">Sign in</button>
</form>
</body>
</html>
`;
}

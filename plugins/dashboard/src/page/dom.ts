/**
 * The page's shared helpers (plain browser JavaScript): elements, dates with their day, the links of its hash
 * routes, and the two ways it talks to the server: GET for reading, a JSON POST for acting.
 */
export const DOM_SCRIPT = String.raw`
const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => [...root.querySelectorAll(sel)];
const el = (tag, attrs = {}, ...children) => { const e = document.createElement(tag); for (const [k, v] of Object.entries(attrs)) if (v !== undefined) e.setAttribute(k, v); for (const c of children) e.append(c); return e; };
const SVG = 'http://www.w3.org/2000/svg';
const svgEl = (tag, attrs = {}) => { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; };
const pad = (n, w = 2) => String(n).padStart(w, '0');
// Local time with its date, as operators compare it with logs of other days: 2026-12-07 15:04:05.
const fmtDate = (ms, millis) => { if (ms === undefined || ms === null) return '–'; const d = new Date(ms); return d.getFullYear() + '-' + pad(d.getMonth() + 1) + '-' + pad(d.getDate()) + ' ' + pad(d.getHours()) + ':' + pad(d.getMinutes()) + ':' + pad(d.getSeconds()) + (millis ? '.' + pad(d.getMilliseconds(), 3) : ''); };
const fmtAge = (ms) => { if (ms === undefined) return '–'; const s = Math.max(0, ms) / 1000; return s < 90 ? s.toFixed(0) + ' s' : s < 5400 ? (s / 60).toFixed(0) + ' min' : s < 172800 ? (s / 3600).toFixed(1) + ' h' : (s / 86400).toFixed(1) + ' d'; };
const fmtLatency = (s) => s === undefined ? '–' : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 0) + ' ms' : s < 120 ? s.toFixed(1) + ' s' : (s / 60).toFixed(1) + ' min';
const fmtRate = (v) => v === undefined ? '–' : v < 10 ? v.toFixed(1) : v.toFixed(0);
const plural = (n, one, many) => n + ' ' + (n === 1 ? one : many || one + 's');
const subscriptionHash = (topic, subscription) => '#/topic/' + encodeURIComponent(topic) + '/' + encodeURIComponent(subscription ?? 'default');
const messageHash = (topic, subscription, id) => '#/message/' + encodeURIComponent(topic) + '/' + encodeURIComponent(subscription ?? 'default') + '/' + encodeURIComponent(id);
const setText = (node, text) => { if (node.textContent !== text) node.textContent = text; };
let route = { name: 'overview' };
let snapshot;

async function answer(res) {
  const body = await res.json().catch(() => ({}));
  if (!res.ok) { const e = new Error(body.error ? body.error.message : res.status + ' ' + res.statusText); e.code = body.error && body.error.code; throw e; }
  return body;
}
const read = async (path, params) => answer(await fetch('api/' + path + '?' + new URLSearchParams(params), { credentials: 'same-origin' }));
const act = async (verb, body) => answer(await fetch('api/' + verb, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), credentials: 'same-origin' }));

// Resolves true when the operator confirms, in a modal dialog that states what is about to happen and to how many.
function confirmAct(text, label) {
  const dialog = $('#confirm');
  $('p', dialog).textContent = text;
  $('button[value="ok"]', dialog).textContent = label;
  dialog.returnValue = '';
  dialog.showModal();
  $('button[value="cancel"]', dialog).focus();
  return new Promise((resolve) => dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true }));
}
`;

import { applyChange } from '../changes.js';
import { HISTORY_SECONDS, LIST_LIMIT } from '../monitor.js';

/**
 * The page's routes and live stream (plain browser JavaScript): hash routes for the overview, a subscription and a
 * message; the stream's first snapshot, then its changes applied with the server's own `applyChange`.
 */
export const LIVE_SCRIPT = String.raw`
const applyChange = (${applyChange.toString()});

function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
  if (parts[0] === 'topic' && parts[1]) return { name: 'subscription', topic: parts[1], subscription: parts[2] || 'default' };
  if (parts[0] === 'message' && parts[3]) return { name: 'message', topic: parts[1], subscription: parts[2], id: parts.slice(3).join('/') };
  return { name: 'overview' };
}

function renderAll(s) {
  const status = $('#status');
  status.hidden = !s.error;
  setText(status, s.error ? 'Storage did not answer the last poll: ' + s.error : '');
  renderOverview(s);
  if (route.name === 'subscription') renderSubscription(s);
  renderMachines(s);
}

function show() {
  const before = route;
  route = parseRoute();
  $('#overview').hidden = route.name !== 'overview';
  $('#subscription').hidden = route.name !== 'subscription';
  $('#message').hidden = route.name !== 'message';
  $('#machines-title').hidden = route.name !== 'overview';
  if (before.name !== route.name || before.topic !== route.topic || before.subscription !== route.subscription || before.id !== route.id) setText($('#act-notice'), '');
  if (route.name === 'subscription') openSubscription();
  if (route.name === 'message') openMessage();
  if (snapshot) renderAll(snapshot);
  document.title = (route.name === 'overview' ? '' : (route.id ?? route.topic + ' / ' + route.subscription) + ' · ') + TITLE;
  // A keyboard user lands on the new view's heading, not at the top of the page.
  if (before !== route && location.hash) { const h = $('#' + { overview: 'overview', subscription: 'subscription', message: 'message' }[route.name] + ' h2'); if (h) h.focus({ preventScroll: true }); window.scrollTo(0, 0); }
}

setupSubscription();
window.addEventListener('hashchange', show);
show();
const source = new EventSource('events');
source.addEventListener('snapshot', (e) => { snapshot = JSON.parse(e.data); renderAll(snapshot); });
source.addEventListener('change', (e) => { if (!snapshot) return; snapshot = applyChange(snapshot, JSON.parse(e.data), ${HISTORY_SECONDS}, ${LIST_LIMIT}); renderAll(snapshot); });
source.onerror = () => { const st = $('#status'); st.hidden = false; st.textContent = 'Connection to the dashboard lost; retrying…'; };
`;

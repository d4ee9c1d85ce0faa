/**
 * A subscription's page (plain browser JavaScript): its operator actions, each destructive one confirmed with the
 * number of messages it touches, and the message browser, paged by the cursor storage hands back.
 */
export const SUBSCRIPTION_SCRIPT = String.raw`
const VIEWS = [['waiting', 'Waiting'], ['delayed', 'Delayed'], ['leased', 'Leased'], ['dead', 'Dead']];
const PAGE_SIZE = 25;
const browsing = { key: undefined, view: 'waiting', cursors: [undefined], page: 0, search: undefined, counts: undefined, shown: '' };

function subscriptionView(s) {
  const t = s && s.topics.find((x) => x.name === route.topic);
  const sub = t && (t.subscriptions || []).find((x) => x.name === route.subscription);
  return { t, sub };
}

function openSubscription() {
  const key = route.topic + '\u0000' + route.subscription;
  if (browsing.key !== key) {
    Object.assign(browsing, { key, view: 'waiting', cursors: [undefined], page: 0, search: undefined, counts: undefined, shown: '' });
    $('#search-value').value = '';
    setText($('#act-notice'), '');
  }
  const section = $('#subscription');
  setText($('h2 .name', section), route.topic + ' / ' + route.subscription);
  for (const b of $$('[role="tab"]', section)) b.setAttribute('aria-selected', String(!browsing.search && b.dataset.view === browsing.view));
  loadMessages();
}

function notice(text, failed) {
  const n = $('#act-notice');
  n.className = 'notice' + (failed ? ' failed' : '');
  n.textContent = text;
}

// Runs a verb on this subscription, after the operator's confirmation when it is destructive; refreshes the list.
async function operate(verb, extra, button, ask) {
  const body = Object.assign({ topic: route.topic, subscription: route.subscription }, extra);
  if (ask) {
    if (!(await confirmAct(ask[0], ask[1]))) return;
    body.confirm = true;
  }
  const focused = button && document.activeElement === button;
  if (button) button.disabled = true;
  try {
    const a = await act(verb, body);
    const missing = a.missing && a.missing.length ? ' Not found in that state (any more): ' + a.missing.join(', ') + '.' : '';
    const done = {
      pause: () => 'Paused: consumers lease nothing more, in every process, within a second.',
      resume: () => 'Resumed: consumers lease again.',
      empty: () => 'Emptied ' + plural(a.emptied, 'waiting or delayed message') + '.',
      discard: () => 'Discarded ' + plural(a.discarded, 'dead letter') + '.',
      'retry-now': () => 'Made ' + plural(a.retried, 'message') + ' due now.',
      redrive: () => 'Redrove ' + plural(a.redriven, 'message') + '.',
    }[verb]();
    notice(done + missing, false);
    if (route.name === 'subscription') loadMessages();
    if (route.name === 'message') openMessage();
  } catch (error) {
    notice(verb + ' failed: ' + error.message, true);
  } finally {
    if (button) button.disabled = false;
    // A disabled button drops the focus: a keyboard user gets it back where they were.
    if (focused && button.isConnected) button.focus();
  }
}

function countsOf(sub, t) {
  const c = (sub && sub.counts) || {};
  return { ready: c[t && t.ready] ?? 0, leased: c[t && t.leased] ?? 0, dead: c.dead ?? 0 };
}

function renderSubscription(s) {
  const { t, sub } = subscriptionView(s);
  const section = $('#subscription');
  if (!t) { setText($('h2 small', section), 'not in this storage (any more)'); return; }
  const about = (t.lifecycle ?? 'lifecycle not recorded') + (t.ordering && t.ordering !== 'none' ? ' · ordered by key (' + t.ordering + ')' : '');
  setText($('h2 small', section), about);
  const links = $('.links', section);
  const sig = JSON.stringify([t.deadLetterOf, sub && sub.deadLetter, t.deadLetter]);
  if (links.dataset.sig !== sig) {
    links.dataset.sig = sig;
    const parts = [];
    const to = (sub && sub.deadLetter) || t.deadLetter;
    if (to) parts.push('Dead letters are copied to ', el('a', { href: subscriptionHash(to, 'default') }, to), '. ');
    if (t.deadLetterOf) { parts.push('Holds the dead letters of '); t.deadLetterOf.forEach((x, i) => parts.push(...(i ? [', '] : []), el('a', { href: subscriptionHash(x, (s.topics.find((y) => y.name === x)?.subscriptions ?? [])[0]?.name) }, x))); parts.push('.'); }
    links.replaceChildren(...parts);
  }
  const n = countsOf(sub, t);
  const paused = sub && sub.pausedAt !== undefined;
  const pause = $('#pause');
  setText(pause, paused ? 'Resume' : 'Pause');
  pause.dataset.paused = String(!!paused);
  pause.setAttribute('aria-pressed', String(!!paused));
  const state = $('#run-state');
  setText(state, paused ? 'Paused since ' + fmtDate(sub.pausedAt) : 'Running');
  state.className = 'state badge' + (paused ? ' paused' : '');
  setText($('#empty-btn'), 'Empty (' + n.ready + ')…');
  $('#empty-btn').disabled = n.ready === 0;
  setText($('#redrive-all'), 'Redrive all dead (' + n.dead + ')…');
  setText($('#discard-all'), 'Discard all dead (' + n.dead + ')…');
  $('#redrive-all').disabled = $('#discard-all').disabled = n.dead === 0;
  for (const b of $$('[role="tab"]', section)) {
    const count = b.dataset.view === 'leased' ? ' (' + n.leased + ')' : b.dataset.view === 'dead' ? ' (' + n.dead + ')' : '';
    setText(b, VIEWS.find((v) => v[0] === b.dataset.view)[1] + count);
  }
  // The list follows the counts: what moved since the last sample is read again, not every second.
  const counts = JSON.stringify(sub && sub.counts);
  if (browsing.counts !== undefined && browsing.counts !== counts) loadMessages();
  browsing.counts = counts;
}

async function loadMessages() {
  const key = browsing.key;
  const params = { topic: route.topic, subscription: route.subscription, limit: PAGE_SIZE };
  if (browsing.search) params[browsing.search.by] = browsing.search.value;
  else {
    params.view = browsing.view;
    const after = browsing.cursors[browsing.page];
    if (after) params.after = after;
  }
  let page;
  try {
    page = await read('messages', params);
  } catch (error) {
    notice('Could not read the messages: ' + error.message, true);
    return;
  }
  if (key !== browsing.key) return;
  browsing.cursors[browsing.page + 1] = page.next;
  drawMessages(page);
}

function drawMessages(page) {
  const view = browsing.search ? 'search' : browsing.view;
  const shown = JSON.stringify([view, browsing.page, page.messages.map((m) => [m.id, m.state, m.deliveries, m.availableAt, m.leaseUntil]), page.next]);
  const pager = $('#page-info');
  setText(pager, browsing.search ? plural(page.messages.length, 'message') + ' with ' + browsing.search.by + ' "' + browsing.search.value + '"' : 'Page ' + (browsing.page + 1) + (page.messages.length ? ' · ' + plural(page.messages.length, 'message') : ''));
  $('#prev').disabled = browsing.search !== undefined || browsing.page === 0;
  $('#next').disabled = browsing.search !== undefined || !page.next;
  if (shown === browsing.shown) return;
  browsing.shown = shown;
  const selectable = view === 'dead' || view === 'delayed';
  const head = ['', 'id', 'key', 'state', 'deliveries', view === 'delayed' ? 'due at' : 'available since', 'created', view === 'leased' ? 'lease holder · until' : 'last error', ''];
  const table = $('table.messages');
  const rows = page.messages.map((m) => {
    const buttons = [];
    const one = (label, verb, ask, cls) => { const b = el('button', { type: 'button', 'data-act': verb, class: cls }, label); b.onclick = () => operate(verb, { ids: [m.id] }, b, ask); buttons.push(b); };
    if (view === 'dead' || (view === 'search' && m.state === 'dead')) {
      one('Redrive', 'redrive');
      one('Discard', 'discard', ['Discard dead letter ' + m.id + ' of ' + route.topic + '/' + route.subscription + '? It is dropped for good.', 'Discard 1 message'], 'danger');
    }
    if (view === 'delayed') one('Retry now', 'retry-now');
    const box = selectable ? el('input', { type: 'checkbox', 'data-id': m.id, 'aria-label': 'Select ' + m.id }) : '';
    const firstLine = (m.lastError ?? '').split('\n')[0];
    return el('tr', { 'data-id': m.id },
      el('td', {}, box),
      el('td', { class: 'id' }, el('a', { href: messageHash(route.topic, route.subscription, m.id) }, m.id)),
      el('td', { class: 'id' }, m.key ?? ''),
      el('td', {}, m.state),
      el('td', { class: 'num' }, String(m.deliveries)),
      el('td', {}, fmtDate(m.availableAt)),
      el('td', {}, fmtDate(m.createdAt)),
      view === 'leased' ? el('td', { class: 'token' }, (m.leaseToken ?? '–') + ' · ' + fmtDate(m.leaseUntil)) : el('td', { class: 'error', title: m.lastError ?? '' }, firstLine),
      el('td', {}, ...buttons));
  });
  table.replaceChildren(el('thead', {}, el('tr', {}, ...head.map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, ...rows));
  if (!rows.length) table.append(el('tbody', {}, el('tr', {}, el('td', { colspan: head.length, class: 'none' }, browsing.search ? 'No message with that ' + browsing.search.by + '.' : 'No ' + view + ' messages.'))));
  const selection = $('#subscription .selection');
  selection.replaceChildren();
  if (selectable && rows.length) {
    const picked = () => $$('table.messages input[type="checkbox"]:checked').map((b) => b.dataset.id);
    const some = (label, verb, ask, cls) => {
      const b = el('button', { type: 'button', id: verb + '-selected', class: cls }, label);
      b.onclick = () => { const ids = picked(); if (!ids.length) return notice('Select messages first (the boxes on the left).', true); operate(verb, { ids }, b, ask && ask(ids)); };
      selection.append(b);
    };
    if (view === 'dead') {
      some('Redrive selected', 'redrive');
      some('Discard selected…', 'discard', (ids) => ['Discard ' + plural(ids.length, 'selected dead letter') + ' of ' + route.topic + '/' + route.subscription + '? They are dropped for good.', 'Discard ' + plural(ids.length, 'message')], 'danger');
    } else some('Retry selected now', 'retry-now');
  }
}

function setupSubscription() {
  const section = $('#subscription');
  const tabs = $('[role="tablist"]', section);
  for (const [view, label] of VIEWS) {
    const b = el('button', { type: 'button', role: 'tab', 'data-view': view, 'aria-selected': 'false' }, label);
    b.onclick = () => { browsing.view = view; browsing.search = undefined; browsing.page = 0; browsing.cursors = [undefined]; $('#search-value').value = ''; openSubscription(); };
    tabs.append(b);
  }
  $('form.search', section).addEventListener('submit', (e) => {
    e.preventDefault();
    const value = $('#search-value').value.trim();
    browsing.search = value ? { by: $('#search-by').value, value } : undefined;
    browsing.page = 0; browsing.cursors = [undefined];
    openSubscription();
  });
  $('#search-clear').onclick = () => { $('#search-value').value = ''; browsing.search = undefined; openSubscription(); };
  $('#prev').onclick = () => { if (browsing.page > 0) { browsing.page--; loadMessages(); } };
  $('#next').onclick = () => { if (browsing.cursors[browsing.page + 1]) { browsing.page++; loadMessages(); } };
  $('#pause').onclick = (e) => operate(e.currentTarget.dataset.paused === 'true' ? 'resume' : 'pause', {}, e.currentTarget);
  $('#retry-all').onclick = (e) => operate('retry-now', {}, e.currentTarget);
  const where = () => route.topic + '/' + route.subscription;
  const n = () => countsOf(subscriptionView(snapshot).sub, subscriptionView(snapshot).t);
  $('#empty-btn').onclick = (e) => operate('empty', {}, e.currentTarget, ['Empty ' + where() + '? This drops its ' + plural(n().ready, 'waiting or delayed message', 'waiting and delayed messages') + ' for good. Leased ones are left to their handlers.', 'Empty ' + plural(n().ready, 'message')]);
  $('#redrive-all').onclick = (e) => operate('redrive', {}, e.currentTarget, ['Redrive every dead letter of ' + where() + '? ' + plural(n().dead, 'message') + ' will be delivered again.', 'Redrive ' + plural(n().dead, 'message')]);
  $('#discard-all').onclick = (e) => operate('discard', {}, e.currentTarget, ['Discard every dead letter of ' + where() + '? This drops ' + plural(n().dead, 'message') + ' for good.', 'Discard ' + plural(n().dead, 'message')]);
}
`;

/**
 * The page's topic cards (plain browser JavaScript): each topic's lifecycle diagram with live counts on its states,
 * its charts from the history the page keeps, its dead letters and leases in flight, its recent transitions.
 */
export const MACHINES_SCRIPT = `
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
  $('#cards').append(root);
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
      b.onclick = () => { if (route.name === 'subscription') location.hash = subscriptionHash(topic.name, x.name); else { c.selected = x.name; renderMachines(lastSnapshot); } };
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

async function redrive(topic, subscription, ids, button, total) {
  const c = cards.get(topic);
  const notice = $('.dead .notice', c.root);
  const body = { topic };
  if (subscription !== undefined) body.subscription = subscription;
  if (ids) body.ids = ids;
  else if (await confirmAct('Redrive every dead letter of ' + topic + (subscription ? '/' + subscription : '') + '? ' + plural(total, 'message') + ' will be delivered again.', 'Redrive ' + plural(total, 'message'))) body.confirm = true;
  else return;
  button.disabled = true;
  try {
    const answer = await act('redrive', body);
    notice.className = 'notice';
    notice.textContent = 'Redrove ' + answer.redriven + ' message' + (answer.redriven === 1 ? '' : 's') + (answer.missing.length ? '; not dead letters (any more): ' + answer.missing.join(', ') : '') + '.';
  } catch (error) {
    notice.className = 'notice failed';
    notice.textContent = 'Redrive failed: ' + error.message;
    button.disabled = false;
  }
}

function renderMachines(s) {
  lastSnapshot = s;
  const seen = new Set();
  for (const t of s.topics) {
    seen.add(t.name);
    const c = card(t);
    c.root.hidden = route.name === 'message' || (route.name === 'subscription' && route.topic !== t.name);
    if (route.name === 'subscription' && route.topic === t.name) c.selected = route.subscription;
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
      all.onclick = () => redrive(t.name, sub.name, undefined, all, total);
      deadBody.replaceChildren(table(['id', 'deliveries', 'created', 'last error', ''], dead.map((m) => {
        const b = el('button', { 'data-redrive-id': m.id }, 'Redrive');
        b.onclick = () => redrive(t.name, sub.name, [m.id], b);
        const first = (m.lastError ?? '').split('\\n')[0];
        return el('tr', { 'data-id': m.id }, el('td', { class: 'id' }, el('a', { href: messageHash(t.name, sub.name, m.id) }, m.id)), el('td', {}, String(m.deliveries)), el('td', {}, fmtDate(m.createdAt)), el('td', { class: 'error', title: m.lastError ?? '' }, first), el('td', {}, b));
      })), el('p', { class: 'none' }, total > dead.length ? 'Showing ' + dead.length + ' of ' + total + '. ' : ''), all);
    }
    const leases = sub.leases;
    $('.leases .body', root).replaceChildren(!leases.length ? el('p', { class: 'none' }, 'None.') : table(['id', 'holder (lease token)', 'deadline', 'delivery'], leases.map((l) => {
      const left = l.leaseUntil === undefined ? undefined : (l.leaseUntil - s.at) / 1000;
      return el('tr', {}, el('td', { class: 'id' }, l.id), el('td', { class: 'token' }, l.leaseToken ?? '–'), el('td', {}, left === undefined ? '–' : left >= 0 ? 'in ' + left.toFixed(1) + ' s' : 'expired ' + (-left).toFixed(1) + ' s ago'), el('td', {}, String(l.deliveries)));
    })));
    $('.recent .body', root).replaceChildren(s.mode !== 'in-process' ? el('p', { class: 'none' }, 'Seen only by the processes that make them: mount the dashboard in the application to list them.') :
      !t.transitions.length ? el('p', { class: 'none' }, 'None since the dashboard started.') :
      el('ol', { class: 'transitions' }, ...t.transitions.map((e) => el('li', {}, fmtDate(e.at, true) + '  ' + e.id + (e.subscription ? '  [' + e.subscription + ']' : '') + '  ' + e.from + ' -' + e.event + '-> ' + e.to))));
  }
  for (const [name, c] of cards) if (!seen.has(name)) { c.root.remove(); cards.delete(name); }
  document.body.dataset.updated = String(s.at);
}

`;

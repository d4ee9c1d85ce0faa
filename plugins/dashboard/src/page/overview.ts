/**
 * The overview (plain browser JavaScript): one row per subscription of every topic, sortable by any column, each
 * row linking to its subscription's page. Rows are updated in place, so that a focused link survives each second.
 */
export const OVERVIEW_SCRIPT = String.raw`
const COLUMNS = [
  { key: 'topic', label: 'Topic' },
  { key: 'subscription', label: 'Subscription' },
  { key: 'lifecycle', label: 'Lifecycle' },
  { key: 'ordering', label: 'Ordering' },
  { key: 'waiting', label: 'Waiting', num: true, title: 'Waiting and delayed: copies in the ready state' },
  { key: 'leased', label: 'Leased', num: true },
  { key: 'dead', label: 'Dead', num: true },
  { key: 'done', label: 'Done', num: true, title: 'Copies past delivery still kept (consumed, acked)' },
  { key: 'rateIn', label: 'In/s', num: true, fmt: fmtRate },
  { key: 'rateOut', label: 'Out/s', num: true, fmt: fmtRate, title: 'Consumed or dead-lettered per second' },
  { key: 'oldest', label: 'Oldest waiting', num: true, fmt: fmtAge, title: 'How long the first waiting message has been due' },
  { key: 'paused', label: 'Paused', fmt: (v) => v === undefined ? '' : 'since ' + fmtDate(v) },
];
let sortBy = { key: 'topic', dir: 1 };

function overviewRows(s) {
  const rows = [];
  for (const t of s.topics) {
    const subs = t.subscriptions && t.subscriptions.length ? t.subscriptions : [{ name: undefined, counts: t.counts }];
    for (const sub of subs) {
      const c = sub.counts || {};
      const n = (state) => (state ? c[state] ?? 0 : 0);
      const total = Object.values(c).reduce((a, b) => a + b, 0);
      const waiting = n(t.ready), leased = t.leased === t.ready ? 0 : n(t.leased), dead = c.dead ?? 0;
      rows.push({
        id: t.name + '\u0000' + (sub.name ?? ''), topic: t.name, subscription: sub.name ?? '–', link: subscriptionHash(t.name, sub.name),
        lifecycle: t.lifecycle ?? 'not recorded', ordering: t.ordering ?? '–', waiting, leased, dead, done: total - waiting - leased - dead,
        rateIn: sub.rateIn, rateOut: sub.rateOut, oldest: sub.oldestWaitingAt === undefined ? undefined : s.at - sub.oldestWaitingAt,
        paused: sub.pausedAt, deadLetterOf: t.deadLetterOf,
      });
    }
  }
  const col = COLUMNS.find((c) => c.key === sortBy.key);
  const value = (r) => r[sortBy.key] ?? (col.num ? -1 : '');
  return rows.sort((a, b) => {
    const x = value(a), y = value(b);
    const order = x < y ? -1 : x > y ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
    return sortBy.dir * order;
  });
}

function overviewHead() {
  const head = $('table.overview thead');
  if (head.firstChild) return;
  const tr = el('tr');
  for (const c of COLUMNS) {
    const b = el('button', { type: 'button', title: c.title }, c.label);
    b.onclick = () => { sortBy = { key: c.key, dir: sortBy.key === c.key ? -sortBy.dir : 1 }; renderOverview(snapshot); };
    tr.append(el('th', { 'data-key': c.key, class: c.num ? 'num' : undefined, scope: 'col' }, b));
  }
  head.append(tr);
}

function topicCell(r) {
  const cell = [el('a', { href: r.link, 'data-link': 'topic' }, r.topic)];
  if (r.deadLetterOf) {
    cell.push(el('span', { class: 'dlq' }, ' dead letters of '));
    r.deadLetterOf.forEach((source, i) => {
      if (i > 0) cell.push(el('span', { class: 'dlq' }, ', '));
      const sub = (snapshot.topics.find((t) => t.name === source)?.subscriptions ?? [])[0];
      cell.push(el('a', { href: subscriptionHash(source, sub && sub.name), 'data-link': 'source' }, source));
    });
  }
  return cell;
}

function renderOverview(s) {
  overviewHead();
  for (const th of $$('table.overview th')) th.setAttribute('aria-sort', th.dataset.key === sortBy.key ? (sortBy.dir > 0 ? 'ascending' : 'descending') : 'none');
  setText($('#overview-at'), 'as of ' + fmtDate(s.at) + (s.tookMs !== undefined ? ' · read in ' + s.tookMs + ' ms' : ''));
  setText($('#rates-note'), s.rates === 'events'
    ? 'Rates are per second over the last 10 s, from this process\'s transitions (other processes\' are not seen here). Waiting counts delayed messages too.'
    : 'Standalone: no events reach this page, so rates are derived from the change of counts between samples (over the last 10 s; in = new copies, out = copies past delivery). Waiting counts delayed messages too.');
  $('#empty').hidden = s.topics.length > 0;
  const body = $('table.overview tbody');
  const rows = overviewRows(s);
  const existing = new Map($$('tr', body).map((tr) => [tr.dataset.id, tr]));
  const ordered = rows.map((r) => {
    let tr = existing.get(r.id);
    existing.delete(r.id);
    if (!tr) {
      tr = el('tr', { 'data-id': r.id, 'data-topic': r.topic, 'data-subscription': r.subscription });
      for (const c of COLUMNS) tr.append(el('td', { 'data-key': c.key, class: c.num ? 'num' : undefined }));
      $('td[data-key="subscription"]', tr).append(el('a', { href: r.link, 'data-link': 'subscription' }, r.subscription));
    }
    const topicKey = JSON.stringify(r.deadLetterOf ?? []);
    const topicTd = $('td[data-key="topic"]', tr);
    if (topicTd.dataset.sig !== topicKey) { topicTd.dataset.sig = topicKey; topicTd.replaceChildren(...topicCell(r)); }
    for (const c of COLUMNS) {
      if (c.key === 'topic' || c.key === 'subscription') continue;
      const td = $('td[data-key="' + c.key + '"]', tr);
      setText(td, c.fmt ? c.fmt(r[c.key]) : String(r[c.key]));
      if (c.key === 'dead') td.classList.toggle('some-dead', r.dead > 0);
    }
    tr.classList.toggle('paused', r.paused !== undefined);
    return tr;
  });
  for (const tr of existing.values()) tr.remove();
  // Moving a row would take the focus from a link in it: rows move only when the order changed.
  const now = $$('tr', body);
  if (now.length !== ordered.length || ordered.some((tr, i) => now[i] !== tr)) body.append(...ordered);
}
`;

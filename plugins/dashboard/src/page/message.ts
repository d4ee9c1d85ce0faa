/**
 * One message's page (plain browser JavaScript): its payload and headers as pretty JSON, its deliveries, dates and
 * lease, its last error with the stack folded, and the actions its state allows.
 */
export const MESSAGE_SCRIPT = String.raw`
const pretty = (text) => { if (text === undefined || text === null) return undefined; try { return JSON.stringify(JSON.parse(text), null, 2); } catch { return text; } };

async function openMessage() {
  const section = $('#message');
  const { topic, subscription, id } = route;
  const back = el('a', { href: subscriptionHash(topic, subscription) }, '← ' + topic + ' / ' + subscription);
  const title = el('h2', { class: 'view', tabindex: '-1' }, 'Message ', el('code', {}, id));
  let m;
  try {
    m = (await read('message', { topic, subscription, id })).message;
  } catch (error) {
    section.replaceChildren(back, title, el('p', { class: 'notice failed' }, error.message));
    return;
  }
  if (route.name !== 'message' || route.id !== id) return;
  const rows = [
    ['Topic', topic], ['Subscription', subscription], ['State', m.state], ['Key', m.key ?? '–'], ['Deliveries', String(m.deliveries)],
    ['Created', fmtDate(m.createdAt, true)], ['Available since', fmtDate(m.availableAt, true)],
    ['Lease holder', m.leaseToken ?? '–'], ['Lease until', fmtDate(m.leaseUntil, true)],
  ];
  const fields = el('dl', { class: 'fields' }, ...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-field': k.toLowerCase().replace(/ /g, '-') }, v)]));
  const buttons = el('div', { class: 'actions' });
  const button = (label, verb, ask, cls) => { const b = el('button', { type: 'button', 'data-act': verb, class: cls }, label); b.onclick = () => operate(verb, { ids: [id] }, b, ask); buttons.append(b); };
  if (m.state === 'dead') {
    button('Redrive', 'redrive');
    button('Discard…', 'discard', ['Discard dead letter ' + id + ' of ' + topic + '/' + subscription + '? It is dropped for good.', 'Discard 1 message'], 'danger');
  }
  const t = snapshot && snapshot.topics.find((x) => x.name === topic);
  if (t && m.state === t.ready && m.availableAt > Date.now()) button('Retry now', 'retry-now');
  const error = m.lastError ? m.lastError.split('\n') : undefined;
  section.replaceChildren(
    back, title, fields, buttons,
    el('h3', {}, 'Payload'), el('pre', { class: 'json', 'data-part': 'payload' }, pretty(m.body)),
    el('h3', {}, 'Headers'), m.headers ? el('pre', { class: 'json', 'data-part': 'headers' }, pretty(m.headers)) : el('p', { class: 'none' }, 'None.'),
    el('h3', {}, 'Last error'),
    error ? el('div', { 'data-part': 'error' }, el('p', { class: 'error-line' }, error[0]), ...(error.length > 1 ? [el('details', {}, el('summary', {}, 'Stack (' + plural(error.length - 1, 'line') + ')'), el('pre', {}, error.slice(1).join('\n')))] : [])) : el('p', { class: 'none' }, 'None: no delivery of it has failed.'),
  );
}
`;

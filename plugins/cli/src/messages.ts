import { DEFAULT_SUBSCRIPTION, InvalidOptionsError, MESSAGE_VIEWS, type MessageView } from '@tidings/core';
import { lifecyclePlans, type LifecyclePlan, type StoredMessage } from '@tidings/core/adapter';
import { clip, parseBody, subscriptionLedger, tidingsCommand, whereIs, type DbOptions, type Output } from './commands.js';
import { withDatabase } from './database.js';
import { MessageNotFoundError, UnknownStateError } from './errors.js';
import { parseInteger } from './parse.js';
import { table } from './table.js';

/** Messages per page of `tidings messages list` unless `--limit` says otherwise. */
export const DEFAULT_PAGE = 50;
/** The most `--limit` takes: storage reads a page at a time, never a whole topic. */
export const MAX_PAGE = 500;

/** Options of `tidings messages list`. */
export interface MessagesListOptions extends DbOptions {
  topic: string;
  /** The subscription whose copies to list (default `default`). */
  subscription?: string;
  /** `waiting` (default), `delayed`, `leased` or `dead`; with `id` or `key` and no state, every state. */
  state?: string;
  id?: string;
  /** Only messages with this ordering key. */
  key?: string;
  /** The `next` cursor of the page before. */
  after?: string;
  /** Messages per page, 1 to 500 (default 50). */
  limit?: number;
  json?: boolean;
  now?: number;
}

/** A page of `tidings messages list`: the messages, and the cursor of the next page when there may be one. */
export interface MessagesListResult {
  subscription: string;
  messages: StoredMessage[];
  next?: string;
}

/** Options of `tidings messages show`. */
export interface MessagesShowOptions extends DbOptions {
  topic: string;
  id: string;
  /** The subscription whose copy to show (default `default`): each subscription has its own deliveries and errors. */
  subscription?: string;
  json?: boolean;
  now?: number;
}

/** A message as the CLI prints it: dates in ISO form, payload and headers parsed, the view it is in named. */
export interface ShownMessage {
  id: string;
  key: string | null;
  /** `waiting`, `delayed`, `leased` or `dead`; another lifecycle state (such as a consumed copy kept) as it is. */
  state: string;
  /** The state as the topic's lifecycle names it (`acked`, `stored`, …). */
  lifecycleState: string;
  deliveries: number;
  availableAt: string;
  createdAt: string;
  leaseUntil: string | null;
  leaseToken: string | null;
  payload: unknown;
  headers: unknown;
  lastError: string | null;
}

/** A page of a subscription's messages in delivery order: prints a table with the command for the next page (or JSON), and returns it. */
export async function messagesList(options: MessagesListOptions, output: Output): Promise<MessagesListResult> {
  const { topic, id, key, after } = options;
  const view = checkState(options.state, id !== undefined || key !== undefined);
  for (const [option, value] of [
    ['--id', id],
    ['--key', key],
    ['--after', after],
  ] as const) {
    if (value !== undefined && (typeof value !== 'string' || value === '')) throw new InvalidOptionsError(`${option} needs a value, e.g. ${option} order-42.`);
  }
  const limit = parseInteger('--limit', options.limit ?? DEFAULT_PAGE, 1, MAX_PAGE);
  return withDatabase(options.db, async (database) => {
    const now = options.now ?? Date.now();
    const { record, subscription, ledger } = await subscriptionLedger(database, topic, options.subscription, now);
    const plan = lifecyclePlans[record.lifecycle];
    const page = await ledger.browse({ view, id, key, after, limit });
    const where = whereIs(topic, subscription);
    const next = page.next;
    if (options.json) {
      const messages = page.messages.map((m) => shownMessage(m, plan, now));
      output.out(JSON.stringify({ db: database.name, topic, subscription, state: view ?? null, messages, next: next ?? null }, null, 2));
      return { subscription, messages: page.messages, ...(next ? { next } : {}) };
    }
    const filters = [id === undefined ? '' : `with id "${id}"`, key === undefined ? '' : `with key "${key}"`];
    const described = (n: number) =>
      [view ?? '', `message${n === 1 ? '' : 's'}`, view === undefined ? 'in any state' : '', ...filters].filter((w) => w !== '').join(' ');
    if (page.messages.length === 0) {
      output.out(`No ${described(0)} in ${where} (${database.target})${after === undefined ? '' : ' after that cursor'}.`);
      return { subscription, messages: [] };
    }
    // The error's first line says why the message failed; `messages show` has the whole stack.
    const rows = page.messages.map((m) => [
      m.id,
      m.key ?? '',
      viewOf(m, plan, now),
      String(m.deliveries),
      new Date(m.availableAt).toISOString(),
      new Date(m.createdAt).toISOString(),
      clip(m.lastError?.split('\n', 1)[0] ?? '', 60),
    ]);
    const n = page.messages.length;
    const heading = `${n} ${described(n)} of ${where} (${database.target}), in delivery order`;
    const lines = [
      heading,
      table(['id', 'key', 'state', 'deliveries', 'available at', 'created at', 'last error'], rows, [false, false, false, true, false, false, false]),
    ];
    if (next !== undefined) {
      const args = ['messages', 'list', topic, ...(subscription === DEFAULT_SUBSCRIPTION ? [] : ['--subscription', subscription])];
      if (view !== undefined) args.push('--state', view);
      if (id !== undefined) args.push('--id', id);
      if (key !== undefined) args.push('--key', key);
      if (limit !== DEFAULT_PAGE) args.push('--limit', String(limit));
      lines.push(`Next page: ${tidingsCommand([...args, '--after', next], database, options.db)}`);
    }
    output.out(lines.join('\n'));
    return { subscription, messages: page.messages, ...(next ? { next } : {}) };
  });
}

/** One message of a subscription in full (payload, headers, deliveries, dates, lease, last error): prints it (or JSON) and returns it. */
export async function messagesShow(options: MessagesShowOptions, output: Output): Promise<StoredMessage> {
  const { topic, id } = options;
  if (typeof id !== 'string' || id === '') throw new InvalidOptionsError('messages show needs a message id, e.g. tidings messages show orders order-42.');
  return withDatabase(options.db, async (database) => {
    const now = options.now ?? Date.now();
    const { record, subscription, ledger } = await subscriptionLedger(database, topic, options.subscription, now);
    const m = await ledger.message(id);
    if (m === undefined) {
      const listing = tidingsCommand(
        ['messages', 'list', topic, ...(subscription === DEFAULT_SUBSCRIPTION ? [] : ['--subscription', subscription])],
        database,
        options.db,
      );
      throw new MessageNotFoundError(topic, subscription, id, listing, database.target);
    }
    const shown = shownMessage(m, lifecyclePlans[record.lifecycle], now);
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, message: shown }, null, 2));
      return m;
    }
    const indent = (text: string) => text.replace(/^/gm, '  ');
    const lease = shown.state === 'leased' ? `held by ${shown.leaseToken ?? '(no token)'} until ${shown.leaseUntil ?? '(no time)'}` : 'none';
    const fields: Array<[string, string]> = [
      ['state', shown.state === shown.lifecycleState ? shown.state : `${shown.state} (${record.lifecycle} state ${shown.lifecycleState})`],
      ['key', shown.key ?? '(none)'],
      ['deliveries', String(shown.deliveries)],
      ['created at', shown.createdAt],
      ['available at', shown.availableAt],
      ['lease', lease],
    ];
    const width = Math.max(...fields.map(([k]) => k.length));
    output.out(
      [
        `Message "${m.id}" of ${whereIs(topic, subscription)} (${database.target})`,
        ...fields.map(([k, v]) => `${k.padEnd(width)}  ${v}`),
        'headers',
        indent(shown.headers === null ? '(none)' : JSON.stringify(shown.headers, null, 2)),
        'payload',
        indent(typeof shown.payload === 'string' ? shown.payload : JSON.stringify(shown.payload, null, 2)),
        'last error',
        indent(shown.lastError ?? '(none)'),
      ].join('\n'),
    );
    return m;
  });
}

/** The view `--state` names, or the default: `waiting`, or every state when an id or key narrows the list anyway. */
function checkState(state: string | undefined, narrowed: boolean): MessageView | undefined {
  if (state === undefined) return narrowed ? undefined : 'waiting';
  if (!(MESSAGE_VIEWS as readonly string[]).includes(state)) throw new UnknownStateError(String(state), MESSAGE_VIEWS);
  return state as MessageView;
}

/** What an operator calls the message's state: the ready state splits into waiting and delayed by whether it is due. */
function viewOf(m: StoredMessage, plan: LifecyclePlan, now: number): string {
  if (m.state === plan.ready) return m.availableAt > now ? 'delayed' : 'waiting';
  if (m.state === plan.leased) return 'leased';
  if (m.state === plan.dead) return 'dead';
  return m.state;
}

function shownMessage(m: StoredMessage, plan: LifecyclePlan, now: number): ShownMessage {
  const iso = (at: number | undefined) => (at === undefined ? null : new Date(at).toISOString());
  return {
    id: m.id,
    key: m.key ?? null,
    state: viewOf(m, plan, now),
    lifecycleState: m.state,
    deliveries: m.deliveries,
    availableAt: new Date(m.availableAt).toISOString(),
    createdAt: new Date(m.createdAt).toISOString(),
    leaseUntil: iso(m.leaseUntil),
    leaseToken: m.leaseToken ?? null,
    payload: parseBody(m.body),
    headers: m.headers === undefined ? null : parseBody(m.headers),
    lastError: m.lastError ?? null,
  };
}

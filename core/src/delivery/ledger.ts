import { InvalidOptionsError, OperationNotSupportedError, UnknownSubscriptionError } from '../errors.js';
import { knownOptions } from '../known-options.js';
import { TidingsEventBus, type OperatorAction } from '../events.js';
import { semanticOf, type MessageState, type Semantic } from '../lifecycle/names.js';
import { lifecyclePlans } from '../lifecycle/plan.js';
import type { TransitionStep } from '../lifecycle/table.js';
import { systemClock, type Clock } from '../services.js';
import type { BrowsePage, NewMessage, SettleItem, StorageAdapter, StoredMessage, StoreResult, SubscriptionRecord, TopicRecord } from '../storage/contract.js';
import { MESSAGE_VIEWS, requests, type BrowseOptions, type ProtocolSubscription, type ProtocolTopic } from '../storage/requests.js';
import { leasePolicy, type LeasePolicy, type Ordering } from './lease-policy.js';

/** What a ledger needs of its instance: the storage it writes, the clock it runs on, the bus it reports to. */
export interface LedgerParts {
  readonly storage: StorageAdapter<unknown>;
  readonly clock: Clock;
  readonly events: TidingsEventBus;
}

/** A topic as its ledger keeps it. */
export interface LedgerTopic extends ProtocolTopic {
  readonly semantic: Semantic;
}

/** One failed delivery to release: the message as leased, when it may be tried again, and why it failed. */
export interface Failure {
  readonly message: StoredMessage;
  readonly availableAt: number;
  /** The error as kept with the message. */
  readonly error?: string;
  /** The error as thrown, for the `deadLetter` event. */
  readonly cause?: unknown;
}

/** What a release or a sweep did: messages back for redelivery, messages dead, ids copied to the dead-letter topic. */
export interface Released {
  readonly retried: StoredMessage[];
  readonly dead: StoredMessage[];
  readonly copied: string[];
}

const noop = () => undefined;

function checkBrowse(o: BrowseOptions): number {
  if (o === null || typeof o !== 'object') throw new InvalidOptionsError(`browse() takes an object, e.g. { view: 'waiting' }, got ${String(o)}.`);
  if (o.view !== undefined && !(MESSAGE_VIEWS as readonly string[]).includes(o.view)) {
    throw new InvalidOptionsError(`browse() view must be one of ${MESSAGE_VIEWS.join(', ')}; got "${String(o.view)}".`);
  }
  if (o.view === undefined && o.id === undefined && o.key === undefined) {
    throw new InvalidOptionsError(
      `browse() needs a view (${MESSAGE_VIEWS.join(', ')}), an id or a key: a page of every state at once would have no order to page by.`,
    );
  }
  knownOptions('browse()', o, ['view', 'id', 'key', 'after', 'limit']);
  for (const k of ['id', 'key', 'after'] as const) {
    if (o[k] !== undefined && (typeof o[k] !== 'string' || o[k] === ''))
      throw new InvalidOptionsError(`browse() ${k} must be a non-empty string, got ${JSON.stringify(o[k])}.`);
  }
  const limit = o.limit ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 500)
    throw new InvalidOptionsError(`browse() limit must be a whole number from 1 to 500, got ${String(o.limit)}.`);
  return limit;
}

/**
 * The producer side of one topic's ledger: every store goes through it, which builds the request, calls storage,
 * emits the stored messages' transitions and wakes the topic's consumers in this process.
 */
export class TopicLedger {
  constructor(
    readonly topic: LedgerTopic,
    readonly parts: LedgerParts,
    /** Wakes every consumer of the topic in this process. */
    readonly wake: () => void = noop,
  ) {}

  /** Emits one `transition` event per step (of a subscription's copy when `subscription` is given), only when someone listens. */
  emit(id: string, steps: readonly TransitionStep[], subscription?: string): void {
    const { events, clock } = this.parts;
    if (events.listenerCount('transition') === 0) return;
    const at = clock.now();
    const { name: topic, semantic, plan } = this.topic;
    for (const s of steps)
      events.emit('transition', { id, topic, subscription, semantic, lifecycle: plan.lifecycle, from: s.from, to: s.to, event: s.event, at });
  }

  /** Stores a batch (inside `tx` when given), emits STORE for each new message and a `duplicate` for each refused one, and wakes consumers. */
  async store(messages: NewMessage[], tx?: unknown): Promise<StoreResult[]> {
    const results = await this.write(messages, this.parts.clock.now(), tx);
    this.announce(results);
    return results;
  }

  /** The store's write alone: for copies whose transitions wait for the transaction they are written in. */
  write(messages: NewMessage[], now: number, tx?: unknown): Promise<StoreResult[]> {
    return this.parts.storage.store(requests.store(this.topic, messages, now), tx);
  }

  /** A store's transitions: the machine has the last word, and a duplicate is a STORE its guard refuses. */
  announce(results: readonly StoreResult[]): void {
    const { plan } = this.topic;
    let stored = 0;
    for (const r of results) {
      if (plan.table.tryNext('sent', { type: 'STORE', duplicate: r.duplicate }) === undefined) {
        this.parts.events.emit('duplicate', { id: r.id, topic: this.topic.name, by: 'broker', at: this.parts.clock.now() });
      } else {
        stored++;
        this.emit(r.id, plan.steps.store);
      }
    }
    if (stored > 0) this.wake();
  }
}

/**
 * The consumer side of one subscription's ledger: every lease, settle, nack, expiry, dead-lettering and redrive goes
 * through it, which builds the request, calls storage, emits the transitions of the messages whose compare-and-set
 * won and wakes consumers. Consumers, the sweeper, the instance, the CLI and the dashboard all use it.
 */
export class SubscriptionLedger {
  /** The subscription as the request builders see it. */
  readonly protocol: ProtocolSubscription;
  /** Settling a keyed message may let the next of its key go: consumers should look again. */
  private readonly freesKeys: boolean;

  constructor(
    readonly topic: TopicLedger,
    readonly name: string,
    limits: { readonly maxDeliveries: number; readonly policy: LeasePolicy },
    /** Wakes this subscription's consumers in this process. */
    readonly wake: () => void = noop,
    /** Where dead letters are copied to. */
    readonly deadLetter?: TopicLedger,
  ) {
    this.protocol = { topic: topic.topic, name, maxDeliveries: limits.maxDeliveries, keyHeldIn: limits.policy.keyHeldIn };
    this.freesKeys = limits.policy.freesKeys;
  }

  private get storage(): StorageAdapter<unknown> {
    return this.topic.parts.storage;
  }

  private now(): number {
    return this.topic.parts.clock.now();
  }

  /** Emits one transition per step for a copy of this subscription. */
  emit(id: string, steps: readonly TransitionStep[]): void {
    this.topic.emit(id, steps, this.name);
  }

  /** Leases up to `limit` messages and emits their lease path. */
  async lease(o: { limit: number; leaseMs: number; leaseToken: string }): Promise<StoredMessage[]> {
    const batch = await this.storage.lease(requests.lease(this.protocol, { ...o, now: this.now() }));
    const { lease } = this.topic.topic.plan.steps;
    for (const m of batch) this.emit(m.id, lease);
    return batch;
  }

  /** Pushes a lease's deadline `ms` from now (inside the handler's transaction when it has one); false if the lease was lost. */
  extendLease(m: SettleItem, ms: number, tx?: unknown): Promise<boolean> {
    const now = this.now();
    return this.storage.extendLease(requests.extendLease(this.protocol, m, now + ms, now), tx);
  }

  /**
   * Takes messages along `steps` as one compare-and-set; returns the ids that won. Inside `tx` nothing is emitted
   * until the caller calls `settled` after its commit.
   */
  async settle(items: readonly StoredMessage[], steps: readonly TransitionStep[], tx?: unknown): Promise<string[]> {
    if (items.length === 0) return [];
    const won = await this.storage.settle(requests.settle(this.protocol, steps, items, this.now()), tx);
    if (tx === undefined) this.settled(items, won, steps);
    return won;
  }

  /** After a settle committed: the winners' transitions, and a wake-up when a settled message frees its key. */
  settled(items: readonly StoredMessage[], won: Iterable<string>, steps: readonly TransitionStep[]): void {
    const ids = new Set(won);
    for (const id of ids) this.emit(id, steps);
    if (this.freesKeys && items.some((m) => m.key !== undefined && ids.has(m.id))) this.wake();
  }

  /**
   * Releases failed deliveries, one request per target: back for redelivery after their backoff while the machine
   * allows (NACK), else to the dead state (DEAD) with their dead-letter copies in the same transaction.
   */
  async release(failures: readonly Failure[]): Promise<Released> {
    const now = this.now();
    const groups: Record<'NACK' | 'DEAD', { to?: MessageState; items: Failure[] }> = { NACK: { items: [] }, DEAD: { items: [] } };
    for (const f of failures) {
      const target = requests.nackTarget(this.protocol, f.message.deliveries);
      groups[target.event].to = target.to;
      groups[target.event].items.push(f);
    }
    const move = async ({ to, items }: { to?: MessageState; items: Failure[] }, tx?: unknown): Promise<StoredMessage[]> => {
      if (items.length === 0 || to === undefined) return [];
      const req = requests.release(
        this.protocol,
        to,
        items.map((f) => ({ id: f.message.id, leaseToken: f.message.leaseToken, availableAt: f.availableAt, error: f.error })),
        now,
      );
      const won = new Set(await this.storage.release(req, tx));
      return items.filter((f) => won.has(f.message.id)).map((f) => ({ ...f.message, state: to, lastError: f.error }));
    };
    const retried = await move(groups.NACK);
    const { leased } = this.topic.topic.plan;
    for (const m of retried) this.emit(m.id, [{ from: leased, event: 'NACK', to: m.state }]);
    const causes = new Map(failures.map((f) => [f.message.id, f.cause]));
    const died = groups.DEAD.items.length === 0 ? { dead: [], copied: [] } : await this.deadLetterIn((tx) => move(groups.DEAD, tx), now, causes);
    return { retried, ...died };
  }

  /** Sweeps expired leases: those out of deliveries to the dead state (with copies), the rest back for redelivery. */
  async expire(): Promise<{ requeued: StoredMessage[] } & Omit<Released, 'retried'>> {
    const now = this.now();
    const { requeue, dead } = requests.expire(this.protocol, now);
    const died = dead ? await this.deadLetterIn((tx) => this.storage.expire(dead, tx), now) : { dead: [], copied: [] };
    const requeued = requeue ? await this.storage.expire(requeue) : [];
    const { leased } = this.topic.topic.plan;
    for (const m of requeued) {
      this.emit(m.id, [{ from: leased, event: 'EXPIRE', to: m.state }]);
      this.topic.parts.events.emit('leaseExpired', { id: m.id, topic: this.topic.topic.name, subscription: this.name, deliveries: m.deliveries, at: now });
    }
    if (requeued.length > 0) this.wake();
    return { requeued, ...died };
  }

  /**
   * Moves messages to the dead state with `move` and copies those that moved into the dead-letter topic (same id,
   * body, key, headers and last error) in the same transaction, so a dead letter is never without its copy; then
   * emits their DEAD transitions, `deadLetter` events and the copies' STORE.
   */
  private async deadLetterIn(
    move: (tx?: unknown) => Promise<StoredMessage[]>,
    now: number,
    causes?: ReadonlyMap<string, unknown>,
  ): Promise<Omit<Released, 'retried'>> {
    const dl = this.deadLetter;
    let copies: StoreResult[] = [];
    const dead = dl
      ? await this.storage.transaction(async (tx) => {
          const moved = await move(tx);
          if (moved.length > 0) {
            const messages = moved.map((m) => ({ id: m.id, body: m.body, key: m.key, availableAt: now, lastError: m.lastError, headers: m.headers }));
            copies = await dl.write(messages, now, tx);
          }
          return moved;
        })
      : await move();
    const { leased } = this.topic.topic.plan;
    for (const m of dead) {
      this.emit(m.id, [{ from: leased, event: 'DEAD', to: m.state }]);
      const error = causes?.get(m.id);
      this.topic.parts.events.emit('deadLetter', {
        id: m.id,
        topic: this.topic.topic.name,
        subscription: this.name,
        deadLetter: dl?.topic.name,
        deliveries: m.deliveries,
        at: now,
        error,
      });
    }
    if (dl && copies.length > 0) dl.announce(copies);
    if (this.freesKeys && dead.some((m) => m.key !== undefined)) this.wake();
    return { dead, copied: copies.filter((r) => !r.duplicate).map((r) => r.id) };
  }

  /** Puts dead messages back for delivery as new lifecycles (the machine's REDRIVE), all or the given ids; returns the ids moved. */
  async redrive(ids?: string[]): Promise<string[]> {
    const req = requests.redrive(this.protocol, ids, this.now());
    if (!req || (ids !== undefined && ids.length === 0)) return [];
    const moved = await this.storage.redrive(req);
    const { redrive } = this.topic.topic.plan.steps;
    for (const id of moved) this.emit(id, redrive);
    if (moved.length > 0) this.wake();
    this.acted('redrive', moved.length, ids);
    return moved;
  }

  /** Reports an operator's act on the bus. */
  private acted(action: OperatorAction, count: number, ids?: string[]): void {
    this.topic.parts.events.emit('operator', { action, topic: this.topic.topic.name, subscription: this.name, count, ...(ids ? { ids } : {}), at: this.now() });
  }

  /** The adapter's optional verb, or a typed refusal naming it. */
  private verb<K extends 'setPaused' | 'browse' | 'discard' | 'retryNow'>(method: K, what: string): NonNullable<StorageAdapter<unknown>[K]> {
    const fn = this.storage[method];
    if (typeof fn !== 'function') throw new OperationNotSupportedError(this.storage.name, method, what);
    return fn.bind(this.storage) as NonNullable<StorageAdapter<unknown>[K]>;
  }

  /**
   * Pauses the subscription in storage: consumers in every process lease nothing more (those in this process at
   * once, others within their pause check) and finish what they hold. Refused for a subscription not recorded.
   */
  async pause(): Promise<void> {
    if (!(await this.verb('setPaused', 'pause a subscription')(this.topic.topic.name, this.name, this.now())))
      throw new UnknownSubscriptionError(this.topic.topic.name, this.name);
    this.acted('pause', 0);
  }

  /** Lets the subscription's consumers lease again, in every process. */
  async resume(): Promise<void> {
    if (!(await this.verb('setPaused', 'resume a subscription')(this.topic.topic.name, this.name, undefined)))
      throw new UnknownSubscriptionError(this.topic.topic.name, this.name);
    this.acted('resume', 0);
    this.wake();
  }

  /** Since when the subscription is paused (epoch ms), or undefined while it runs. */
  async pausedAt(): Promise<number | undefined> {
    const records = await this.storage.subscriptions(this.topic.topic.name);
    return records.find((r) => r.name === this.name)?.pausedAt;
  }

  /** A page of the subscription's messages in delivery order (see `BrowseOptions`); storage reads only the page. */
  async browse(options: BrowseOptions = {}): Promise<BrowsePage> {
    const limit = checkBrowse(options);
    const browse = this.verb('browse', 'browse messages');
    const req = requests.browse(this.protocol, { ...options, limit }, this.now());
    return req ? browse(req) : { messages: [] };
  }

  /** The message with this id, in whatever state this subscription holds it, or undefined. */
  async message(id: string): Promise<StoredMessage | undefined> {
    return (await this.browse({ id, limit: 1 })).messages[0];
  }

  /** Drops every waiting and delayed message (not those leased: their handlers finish them); returns how many. */
  async empty(): Promise<number> {
    const dropped = await this.verb('discard', 'empty a subscription')(requests.empty(this.protocol));
    this.acted('empty', dropped);
    return dropped;
  }

  /** Drops dead messages, all or the given ids, for good; returns how many. */
  async discard(ids?: string[]): Promise<number> {
    const discard = this.verb('discard', 'discard dead letters');
    const req = requests.discardDead(this.protocol, ids);
    const dropped = req === undefined || ids?.length === 0 ? 0 : await discard(req);
    this.acted('discard', dropped, ids);
    return dropped;
  }

  /** Makes delayed messages (a retry's backoff, a send's `delayMs`), all or the given ids, due now; returns the ids moved. */
  async retryNow(ids?: string[]): Promise<string[]> {
    const retry = this.verb('retryNow', 'retry messages now');
    const moved = ids?.length === 0 ? [] : await retry(requests.retryNow(this.protocol, ids, this.now()));
    if (moved.length > 0) this.wake();
    this.acted('retryNow', moved.length, ids);
    return moved;
  }

  /** Reads up to `limit` messages in `state` without changing them. */
  peek(state: MessageState, limit: number): Promise<StoredMessage[]> {
    return this.storage.peek(requests.peek(this.protocol, state, limit));
  }

  /** Dead messages, oldest first (none for a lifecycle whose messages never die). */
  async deadLetters(limit: number): Promise<StoredMessage[]> {
    const { dead } = this.topic.topic.plan;
    return dead === undefined ? [] : this.peek(dead, limit);
  }

  /** Reports a message this subscription found consumed before. */
  duplicate(m: Pick<StoredMessage, 'id'>): void {
    this.topic.parts.events.emit('duplicate', { id: m.id, topic: this.topic.topic.name, subscription: this.name, by: 'consumer', at: this.now() });
  }
}

/**
 * A subscription's ledger built from what storage records of its topic, for tools without a declaration of their own
 * (the CLI, a dashboard watching a database): its lifecycle, ordering and delivery limit are the recorded ones.
 */
export function recordedLedger(
  storage: StorageAdapter<unknown>,
  topic: TopicRecord,
  subscription: Pick<SubscriptionRecord, 'name' | 'maxDeliveries'>,
  parts: { clock?: Clock; events?: TidingsEventBus } = {},
): SubscriptionLedger {
  const plan = lifecyclePlans[topic.lifecycle];
  const ledger = new TopicLedger(
    { name: topic.name, plan, semantic: semanticOf(topic.lifecycle).semantic, dedupWindowMs: 0 },
    { storage, clock: parts.clock ?? systemClock, events: parts.events ?? new TidingsEventBus() },
  );
  const policy = leasePolicy(plan, (topic.ordering ?? 'none') as Ordering);
  return new SubscriptionLedger(ledger, subscription.name, { maxDeliveries: subscription.maxDeliveries, policy });
}

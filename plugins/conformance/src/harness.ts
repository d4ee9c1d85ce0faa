import { randomUUID } from 'node:crypto';
import {
  DEFAULT_SUBSCRIPTION,
  LIFECYCLES,
  Tidings,
  TidingsEventBus,
  type Lifecycle,
  type LifecycleEventType,
  type MessageState,
  type Ordering,
  type TransitionTable,
} from '@tidings/core';
import {
  SubscriptionLedger,
  TopicLedger,
  leasePolicy,
  lifecyclePlans,
  requests,
  type IdempotencyStore,
  type LifecyclePlan,
  type ProtocolSubscription,
  type SettleItem,
  type StateCounts,
  type SubscriptionCounts,
  type StorageAdapter,
  type StoredMessage,
  type StoreResult,
} from '@tidings/core/adapter';

/**
 * Makes the storage adapter under test. Calls with the same `key` must return adapters over the
 * same underlying data (two handles are two brokers racing on one database; an in-process adapter
 * may return the same instance again); calls with different keys must return independent data.
 * The suite opens each adapter it is given (`open()`, once per instance) and closes it after the test.
 */
export type StorageFactory = (ctx: { key: string }) => StorageAdapter<any> | Promise<StorageAdapter<any>>;

/** Makes the idempotency store under test; the suite closes it after each test. */
export type IdempotencyFactory = () => IdempotencyStore<any> | Promise<IdempotencyStore<any>>;

/** A fixed, far-off epoch: adapters must run on the `now` they are given, never on their own clock. */
export const T0 = Date.UTC(2031, 0, 1);

let serial = 0;

/** A name no other test (nor an earlier run against a persistent database) uses: `[a-z0-9_]`, starting with a letter. */
export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${process.pid}_${++serial}`;
}

/** Resolves after `ms`. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it holds; fails after `ms` with `what` in the message. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** What `op` rejected with, or an Error saying it resolved or hung; a synchronous throw counts as a rejection. */
export async function rejectionOf(op: () => unknown, ms = 2_000): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still pending after ${ms} ms`)), ms);
  });
  try {
    await Promise.race([Promise.resolve().then(op), hang]);
    return new Error('resolved instead of rejecting');
  } catch (error) {
    return error;
  } finally {
    clearTimeout(timer);
  }
}

/** A topic's counts (from `tidings.counts`) with absent topics and zero states read the same (both mean "none"). */
export function countsOf(all: StateCounts, topic: string): Partial<Record<MessageState, number>> {
  return Object.fromEntries(Object.entries(all[topic] ?? {}).filter(([, n]) => n !== 0));
}

/** One subscription's counts (from `storage.counts`), absent and zero read the same. */
export function copiesOf(all: SubscriptionCounts, topic: string, subscription = DEFAULT_SUBSCRIPTION): Partial<Record<MessageState, number>> {
  return Object.fromEntries(Object.entries(all[topic]?.[subscription] ?? {}).filter(([, n]) => n !== 0));
}

/** The topics (and their subscriptions) that hold any message in `all`. */
export function holding(all: SubscriptionCounts): string[] {
  return Object.entries(all).flatMap(([topic, subs]) =>
    Object.entries(subs)
      .filter(([, c]) => Object.values(c).some((n) => (n ?? 0) > 0))
      .map(([sub]) => (sub === DEFAULT_SUBSCRIPTION ? topic : `${topic}/${sub}`)),
  );
}

/** The body the suite stores for an id, so a body read back can be checked against its id. */
export function bodyOf(id: string): string {
  return JSON.stringify({ id, note: 'conformance ✓ "quoted" \\ back' });
}

/** Ids `prefix-0` … `prefix-(n-1)`. */
export function idRange(prefix: string, n: number, from = 0): string[] {
  return Array.from({ length: n }, (_, i) => `${prefix}-${from + i}`);
}

/** Sorted copy, so sets of ids compare regardless of the order an adapter returns them in. */
export function sorted(ids: Iterable<string>): string[] {
  return [...ids].sort();
}

/** The lifecycles whose messages are kept under a lease (all but at-most-once). */
export const LEASED_LIFECYCLES = LIFECYCLES.filter((l) => lifecyclePlans[l].retry !== undefined);

/** Where dead letters of the suite's topics go: an at-least-once topic with its default subscription. */
export interface DeadLetterTopic {
  readonly name: string;
}

/** A dead-letter topic of the given name. */
export function deadLetterOf(topic: string): DeadLetterTopic {
  return { name: topic };
}

/** Which expired leases a sweep sent back for redelivery and which it dead-lettered. */
export interface SweepResult {
  requeued: Array<{ id: string; deliveries: number }>;
  dead: Array<{ id: string; deliveries: number }>;
}

/**
 * Drives one topic of an adapter with the requests Tidings' producer and consumer make for its lifecycle: every
 * request is built by core's own `requests` (and its `releaseLeases`/`expireLeases`), none by hand.
 */
export class TopicDriver {
  /** What core's producer and consumer do for this lifecycle: the driver follows the same plan. */
  readonly plan: LifecyclePlan;
  private declared?: Promise<unknown>;

  constructor(
    readonly storage: StorageAdapter<any>,
    readonly topic: string,
    readonly lifecycle: Lifecycle,
    /** The subscription it consumes as (recorded before its first store). */
    readonly subscription = DEFAULT_SUBSCRIPTION,
    readonly ordering: Ordering = 'none',
  ) {
    this.plan = lifecyclePlans[lifecycle];
  }

  /** The lifecycle's transition table. */
  get table(): TransitionTable {
    return this.plan.table;
  }

  /** The state a message waits in until it is leased. */
  get ready(): MessageState {
    return this.plan.ready;
  }

  /** Where EXPIRE and NACK put a message back. */
  get retryState(): MessageState {
    return this.plan.retry!;
  }

  /** Records the driver's subscription (once): a topic stores copies only for the subscriptions it records. */
  declare(): Promise<unknown> {
    this.declared ??= declareSubscription(this.storage, this.topic, this.subscription);
    return this.declared;
  }

  /** The ledger core keeps for this subscription, running at `now`, copying dead letters to `deadLetter`. */
  private ledger(now: number, o: { maxDeliveries?: number; dedupMs?: number; deadLetter?: DeadLetterTopic } = {}): SubscriptionLedger {
    const parts = { storage: this.storage, clock: { now: () => now }, events: new TidingsEventBus() };
    const topic = new TopicLedger({ name: this.topic, plan: this.plan, semantic: 'at-least-once', dedupWindowMs: o.dedupMs ?? 300_000 }, parts);
    const dl = o.deadLetter
      ? new TopicLedger({ name: o.deadLetter.name, plan: lifecyclePlans['at-least-once'], semantic: 'at-least-once', dedupWindowMs: 0 }, parts)
      : undefined;
    return new SubscriptionLedger(
      topic,
      this.subscription,
      { maxDeliveries: o.maxDeliveries ?? 5, policy: leasePolicy(this.plan, this.ordering) },
      undefined,
      dl,
    );
  }

  /** The operator's verbs (pause, browse, empty, discard, retry now) as core runs them on this subscription at `now`. */
  operator(now: number): SubscriptionLedger {
    return this.ledger(now);
  }

  /** The subscription as core's request builders see it. */
  private protocol(): ProtocolSubscription {
    return this.ledger(0).protocol;
  }

  /** A handler's `ctx.extendLease`: the lease of `item` pushed out to `leaseUntil`, asked at `now` (default 0: the rules do not depend on it). */
  extendLease(item: SettleItem, leaseUntil: number, o: { now?: number; tx?: unknown } = {}): Promise<boolean> {
    return this.storage.extendLease(requests.extendLease(this.protocol(), item, leaseUntil, o.now ?? 0), o.tx);
  }

  /** The producer's store (after recording the subscription); end-to-end exactly-once remembers ids for `dedupMs`. */
  async store(
    ids: string[],
    now: number,
    o: { availableAt?: number; dedupMs?: number; tx?: unknown; key?: (id: string) => string | undefined } = {},
  ): Promise<StoreResult[]> {
    await this.declare();
    const messages = ids.map((id) => {
      const key = o.key?.(id);
      return { id, body: bodyOf(id), availableAt: o.availableAt ?? now, ...(key === undefined ? {} : { key }) };
    });
    return this.ledger(now, o).topic.write(messages, now, o.tx);
  }

  /** The consumer's lease: ready -LEASE-> leased, deleting at hand-out for at-most-once, holding keys as the ordering says. */
  lease(now: number, o: { limit?: number; leaseMs?: number; token?: string } = {}): Promise<StoredMessage[]> {
    return this.storage.lease(
      requests.lease(this.protocol(), { limit: o.limit ?? 100, now, leaseMs: o.leaseMs ?? 30_000, leaseToken: o.token ?? randomUUID() }),
    );
  }

  /** A compare-and-set along `events` from `from`, as the consumer settles; tokens are dropped once past the leased state. */
  settle(items: SettleItem[], from: MessageState, events: LifecycleEventType[], now: number, tx?: unknown): Promise<string[]> {
    return this.storage.settle(requests.settle(this.protocol(), this.table.walk(from, events), items, now), tx);
  }

  /** A handler returned: CONSUME and DELETE as one compare-and-set, as core settles both the ack and the inbox; returns the ids consumed. */
  ack(items: SettleItem[], now: number): Promise<string[]> {
    return this.storage.settle(requests.settle(this.protocol(), this.plan.steps.handled, items, now));
  }

  /** A handler threw: back to ready after `delayMs`, or dead (and copied to `deadLetter`) once the machine says so. */
  async nack(
    m: StoredMessage,
    now: number,
    o: { delayMs?: number; maxDeliveries?: number; deadLetter?: DeadLetterTopic; error?: string } = {},
  ): Promise<string[]> {
    if (o.deadLetter) await declareSubscription(this.storage, o.deadLetter.name);
    const failure = { message: m, availableAt: now + (o.delayMs ?? 0), error: o.error };
    const { retried, dead } = await this.ledger(now, o).release([failure]);
    return [...retried, ...dead].map((r) => r.id);
  }

  /** The consumer's sweep of expired leases. */
  async expire(now: number, o: { maxDeliveries?: number; deadLetter?: DeadLetterTopic } = {}): Promise<SweepResult> {
    if (o.deadLetter) await declareSubscription(this.storage, o.deadLetter.name);
    const { requeued, dead } = await this.ledger(now, o).expire();
    const out = (rows: StoredMessage[]) => rows.map((r) => ({ id: r.id, deliveries: r.deliveries }));
    return { requeued: out(requeued), dead: out(dead) };
  }

  /** `tidings.redrive`: dead messages back along the machine's REDRIVE; returns how many. */
  async redrive(now: number, ids?: string[]): Promise<number> {
    return (await this.ledger(now).redrive(ids)).length;
  }

  /** This subscription's messages in `state`, in store order. */
  peek(state: MessageState, limit: number): Promise<StoredMessage[]> {
    return this.storage.peek({ topic: this.topic, subscription: this.subscription, state, limit });
  }

  /** This subscription's counts, zero states left out. */
  async counts(): Promise<Partial<Record<MessageState, number>>> {
    return copiesOf(await this.storage.counts(this.topic), this.topic, this.subscription);
  }
}

/** Records a subscription of a topic, as a consumer's declaration does. */
export function declareSubscription(storage: StorageAdapter<any>, topic: string, name = DEFAULT_SUBSCRIPTION, maxDeliveries = 5): Promise<unknown> {
  return storage.declareSubscription({ topic, name, maxDeliveries, declaredAt: T0 });
}

/** Consumed ids in a Set, for exactly-once topics over an adapter that brings no idempotency store of its own. */
class FallbackIdempotency implements IdempotencyStore {
  readonly name = 'conformance-fallback';
  private readonly held = new Set<string>();

  async seen(topic: string, ids: string[]): Promise<Set<string>> {
    return new Set(ids.filter((id) => this.held.has(`${topic}\n${id}`)));
  }

  async record(topic: string, ids: string[]): Promise<string[]> {
    const fresh = ids.filter((id) => !this.held.has(`${topic}\n${id}`));
    for (const id of fresh) this.held.add(`${topic}\n${id}`);
    return [...new Set(fresh)];
  }

  async purge(): Promise<number> {
    return 0;
  }
}

/** One test's adapters and Tidings instances: unique keys and topics, each adapter opened once, all closed at the end. */
export class SuiteContext {
  private readonly opened = new Set<StorageAdapter<any>>();
  private readonly byKey = new Map<string, StorageAdapter<any>[]>();
  private readonly instances: Tidings<any>[] = [];

  constructor(private readonly factory: StorageFactory) {}

  /** A fresh data key. */
  key(): string {
    return uniqueName('k');
  }

  /** A topic name no other test uses. */
  topic(prefix = 't'): string {
    return uniqueName(prefix).replaceAll('_', '.');
  }

  /** An opened adapter over the data of `key` (fresh data when no key is given). */
  async storage(key = this.key()): Promise<StorageAdapter<any>> {
    const adapter = await this.factory({ key });
    if (!this.opened.has(adapter)) {
      this.opened.add(adapter);
      this.byKey.set(key, [...(this.byKey.get(key) ?? []), adapter]);
      await adapter.open?.();
    }
    return adapter;
  }

  /** Closes every adapter this test opened over the data of `key`, then opens a new one over it: a restart. */
  async reopen(key: string): Promise<StorageAdapter<any>> {
    for (const adapter of this.byKey.get(key) ?? []) await adapter.close();
    this.byKey.delete(key);
    return this.storage(key);
  }

  /** A driver over fresh data (or the data of `key`), its subscription recorded. */
  async driver(lifecycle: Lifecycle, o: { key?: string; topic?: string; subscription?: string; ordering?: Ordering } = {}): Promise<TopicDriver> {
    const d = new TopicDriver(await this.storage(o.key), o.topic ?? this.topic(), lifecycle, o.subscription, o.ordering);
    await d.declare();
    return d;
  }

  /** A real Tidings instance over a fresh adapter (or one over the data of `key`), which `Tidings.create` opens itself. */
  async tidings(key = this.key()): Promise<Tidings<any>> {
    const storage = await this.factory({ key });
    this.opened.add(storage);
    const instance = await Tidings.create({
      storage,
      purgeIntervalMs: 0,
      idempotency: storage.idempotencyStore ? undefined : new FallbackIdempotency(),
    });
    this.instances.push(instance);
    return instance;
  }

  /** Closes every instance and adapter of the test; a failing close fails the test. */
  async dispose(): Promise<void> {
    await Promise.all(this.instances.map((t) => t.close()));
    await Promise.all([...this.opened].map((s) => s.close()));
  }
}

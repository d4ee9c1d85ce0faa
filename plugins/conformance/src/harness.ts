import { randomUUID } from 'node:crypto';
import {
  LIFECYCLES,
  Tidings,
  lifecyclePlans,
  type ExpireResult,
  type IdempotencyStore,
  type Lifecycle,
  type LifecycleEventType,
  type LifecyclePlan,
  type MessageState,
  type SettleItem,
  type StateCounts,
  type StorageAdapter,
  type StoredMessage,
  type StoreResult,
  type TransitionTable,
} from '@tidings/core';

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

/** A topic's counts with absent topics and zero states read the same (both mean "none"). */
export function countsOf(all: StateCounts, topic: string): Partial<Record<MessageState, number>> {
  return Object.fromEntries(Object.entries(all[topic] ?? {}).filter(([, n]) => n !== 0));
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

/** Where dead letters of the suite's topics go: an at-least-once topic, in the state it stores messages in. */
export function deadLetterOf(topic: string): { topic: string; state: MessageState } {
  return { topic, state: lifecyclePlans['at-least-once'].stored };
}

/**
 * Drives one topic of an adapter with exactly the requests Tidings' producer and consumer make
 * for its lifecycle, every state taken from the lifecycle's transition table.
 */
export class TopicDriver {
  /** What core's producer and consumer do for this lifecycle: the driver follows the same plan. */
  readonly plan: LifecyclePlan;

  constructor(
    readonly storage: StorageAdapter<any>,
    readonly topic: string,
    readonly lifecycle: Lifecycle,
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

  /** A handler's `ctx.extendLease`: the lease of `item` pushed out to `leaseUntil`, asked at `now` (default 0: the rules do not depend on it). */
  extendLease(item: SettleItem, leaseUntil: number, o: { now?: number; tx?: unknown } = {}): Promise<boolean> {
    return this.storage.extendLease({ topic: this.topic, state: this.plan.leased, item, leaseUntil, now: o.now ?? 0 }, o.tx);
  }

  /** The producer's store; end-to-end exactly-once remembers ids for `dedupMs`. */
  store(ids: string[], now: number, o: { availableAt?: number; dedupMs?: number; tx?: unknown } = {}): Promise<StoreResult[]> {
    return this.storage.store(
      {
        topic: this.topic,
        lifecycle: this.lifecycle,
        state: this.plan.stored,
        messages: ids.map((id) => ({ id, body: bodyOf(id), availableAt: o.availableAt ?? now })),
        now,
        dedupUntil: this.plan.dedup ? now + (o.dedupMs ?? 300_000) : undefined,
      },
      o.tx,
    );
  }

  /** The consumer's lease: ready -LEASE-> leased, deleting at hand-out for at-most-once. */
  lease(now: number, o: { limit?: number; leaseMs?: number; token?: string } = {}): Promise<StoredMessage[]> {
    return this.storage.lease({
      topic: this.topic,
      from: this.ready,
      to: this.plan.leased,
      limit: o.limit ?? 100,
      now,
      leaseUntil: now + (o.leaseMs ?? 30_000),
      leaseToken: o.token ?? randomUUID(),
      remove: this.plan.removeOnLease,
    });
  }

  /** A compare-and-set along `events` from `from`, as the consumer settles; tokens are dropped once past `leased`. */
  settle(items: SettleItem[], from: MessageState, events: LifecycleEventType[], now: number, tx?: unknown): Promise<string[]> {
    const to = this.table.walk(from, events).at(-1)!.to;
    const cas = items.map((m) => (from === 'leased' ? { id: m.id, leaseToken: m.leaseToken } : { id: m.id }));
    return this.storage.settle({ topic: this.topic, from, to, items: cas, remove: to === 'deleted', now }, tx);
  }

  /** A handler returned: CONSUME and DELETE as one compare-and-set, as core settles both the ack and the inbox; returns the ids consumed. */
  ack(items: SettleItem[], now: number): Promise<string[]> {
    const { handled } = this.plan.steps;
    return this.settle(items, handled[0]!.from, handled.map((s) => s.event), now);
  }

  /** A handler threw: back to ready after `delayMs`, or dead (and copied to `deadLetter`) once the machine says so. */
  nack(m: StoredMessage, now: number, o: { delayMs?: number; maxDeliveries?: number; deadLetter?: { topic: string; state: MessageState }; error?: string } = {}): Promise<string[]> {
    const facts = { deliveries: m.deliveries, maxDeliveries: o.maxDeliveries ?? 5 };
    const retryTo = this.table.tryNext('leased', { type: 'NACK', ...facts });
    const to = retryTo ?? this.table.next('leased', { type: 'DEAD', ...facts });
    return this.storage.release({
      topic: this.topic,
      from: 'leased',
      to,
      items: [{ id: m.id, leaseToken: m.leaseToken, availableAt: now + (o.delayMs ?? 0), error: o.error }],
      now,
      deadLetter: retryTo ? undefined : o.deadLetter,
    });
  }

  /** The consumer's sweep of expired leases. */
  expire(now: number, o: { maxDeliveries?: number; deadLetter?: { topic: string; state: MessageState } } = {}): Promise<ExpireResult> {
    return this.storage.expire({
      topic: this.topic,
      from: 'leased',
      ready: this.retryState,
      dead: 'dead',
      maxDeliveries: o.maxDeliveries ?? 5,
      now,
      deadLetter: o.deadLetter,
    });
  }

  /** `tidings.redrive`: dead messages back in the state the topic stores messages in. */
  redrive(now: number, ids?: string[]): Promise<number> {
    return this.storage.redrive({ topic: this.topic, state: this.plan.stored, ids, now });
  }

  /** This topic's counts, zero states left out. */
  async counts(): Promise<Partial<Record<MessageState, number>>> {
    return countsOf(await this.storage.counts(this.topic), this.topic);
  }
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
      await adapter.open?.();
    }
    return adapter;
  }

  /** A driver over fresh data (or the data of `key`). */
  async driver(lifecycle: Lifecycle, o: { key?: string; topic?: string } = {}): Promise<TopicDriver> {
    return new TopicDriver(await this.storage(o.key), o.topic ?? this.topic(), lifecycle);
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

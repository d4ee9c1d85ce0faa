/**
 * Property tests of the four delivery guarantees under random faults.
 *
 * Each run drives real Tidings instances (producer and consumers each in their own instance, as separate
 * processes would be) over one in-memory storage. Every instance reaches that storage through a thin
 * view that delegates to it and only adds what the test needs to be in control:
 *
 * - leases are gated: a consumer's `lease` call waits until the test grants it, so which consumer
 *   leases when is decided by the generated operations, not by timers;
 * - a slow store: a send's first `store` call waits, before anything is written, until the test lets it
 *   through, so a producer that is told "acked" while its message is not yet stored is seen;
 * - a planned number of store calls fail before writing anything (`StorageError`, code `STORAGE_ERROR`,
 *   retryable); as many as the producer has attempts, so some sends can never be stored;
 * - a planned number of producer acks are lost: the store is applied, then `StorageError` with code
 *   `ACK_LOST` is thrown (retryable);
 * - after a failed store or a lost ack the producer's own retry loop calls `store` again, and that retry
 *   waits until the test grants it;
 * - exactly-once handlers write their effect through `ctx.em`, the memory adapter's own transaction: the
 *   effect registers an undo step, so it is rolled back with the settle and the idempotency record when
 *   the transaction fails. That is the transactional inbox the design promises, without which no broker
 *   can keep a handler whose lease expired mid-run from taking effect twice.
 *
 * A crash is a handler that never settles: its process is abandoned and a new one started in its place.
 * Time is a `ManualClock`; only the `expire` operation moves it, past `leaseMs`. After the operations the
 * run drains (all producer retries allowed, all handlers acked, the clock moved on until the topic is
 * empty) and the history is checked: what producers were told (acks) against what handlers did (effects),
 * and whether each acked message was already stored when its ack reached the producer.
 */
import { memoryStorage, type MemoryStorage, type MemoryTransaction } from '@tidings/adapter-memory';
import { ManualClock, StorageError, Tidings, type ConsumeContext, type Message, type SendAck, type Topic, type TopicOptions } from '@tidings/core';
import {
  topicTotals,
  type ExpireRequest,
  type IdempotencyStore,
  type LeaseRequest,
  type PurgeRequest,
  type ExtendLeaseRequest,
  type TopicRecord,
  type RedriveRequest,
  type ReleaseRequest,
  type SettleRequest,
  type PeekRequest,
  type SubscriptionCounts,
  type SubscriptionRecord,
  type StorageAdapter,
  type StoredMessage,
  type StoreRequest,
  type StoreResult,
} from '@tidings/core/adapter';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// ---------------------------------------------------------------------------------------------------
// Configuration

const SEED = process.env.TIDINGS_SEED !== undefined ? Number(process.env.TIDINGS_SEED) : Date.now() % 2 ** 31;
const NUM_RUNS = process.env.TIDINGS_RUNS !== undefined ? Number(process.env.TIDINGS_RUNS) : 100;
const TOPIC = 'orders';
const LEASE_MS = 1_000;
/** A stuck run (a consumer that never comes back to lease) fails instead of hanging; never reached when things work. */
const STUCK_AFTER_MS = 10_000;
const DRAIN_ROUNDS = 20;
/** Store attempts a producer makes before it gives up on a send. */
const RETRY_ATTEMPTS = 5;

type Kind = 'at-most-once' | 'at-least-once' | 'exactly-once/broker' | 'exactly-once/end-to-end';

/** The subscriptions a scenario's topic is declared with. */
const subscriptionNames = (scenario: Scenario) => Array.from({ length: scenario.subscriptions }, (_, i) => `s${i}`);

function topicOptions(kind: Kind, scenario: Scenario): TopicOptions {
  const common = {
    subscriptions: subscriptionNames(scenario),
    ...(scenario.ordered ? { ordering: 'key' as const } : {}),
    leaseMs: LEASE_MS,
    // Dead-lettering is not what these properties are about: every message gets as many deliveries as it needs.
    maxDeliveries: 1_000,
    // Stores are gated by the test, never slow in real time: a large ack timeout keeps a gated retry from
    // being abandoned by a wall-clock timer, which would make runs depend on the machine's speed.
    ackTimeoutMs: 60_000,
    retry: { attempts: RETRY_ATTEMPTS, initialMs: 1, maxMs: 2 },
    // A nacked message is ready again once the manual clock moves (no jitter: runs replay from the seed).
    backoff: { initialMs: 1, maxMs: 1, jitter: false },
  };
  switch (kind) {
    case 'at-most-once':
      return { semantic: 'at-most-once', ...common };
    case 'at-least-once':
      return { semantic: 'at-least-once', ...common };
    case 'exactly-once/broker':
      return { semantic: 'exactly-once', scope: 'broker', ...common };
    case 'exactly-once/end-to-end':
      // No scope: end-to-end is exactly-once's default.
      return { semantic: 'exactly-once', ...common };
  }
}

// ---------------------------------------------------------------------------------------------------
// Operations

type Op =
  /**
   * The producer sends a new message. Its first store call waits for `finishStore` when `slow`; its first
   * `failedStores` store calls fail without writing, and the `lostAcks` after them write but lose their ack.
   */
  | { kind: 'send'; lostAcks: number; withId: boolean; failedStores: number; slow: boolean }
  /** A slow store, held since its send, goes through to the storage. */
  | { kind: 'finishStore'; pick: number }
  /** Producer retry after a failed store or a lost ack: core's retry loop is let through (acked semantics), or the app resends a refused send (broker scope). */
  | { kind: 'retry'; pick: number }
  /** The app sends an earlier message again under the same id (a duplicated send). */
  | { kind: 'dup'; pick: number }
  /** A consumer's pending lease call goes through. */
  | { kind: 'lease'; pick: number }
  /** An in-flight handler returns (ack). */
  | { kind: 'ack'; pick: number }
  /** An in-flight handler throws (nack). */
  | { kind: 'fail'; pick: number }
  /** An in-flight handler's process crashes: the handler never settles; a new process replaces it. */
  | { kind: 'crash'; pick: number }
  /** The clock moves past the lease. */
  | { kind: 'expire' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('send' as const),
      lostAcks: fc.integer({ min: 0, max: 2 }),
      withId: fc.boolean(),
      // Mostly none; sometimes one or two the retries get past; sometimes every attempt, so the send cannot succeed.
      failedStores: fc.oneof(
        { weight: 3, arbitrary: fc.constant(0) },
        { weight: 2, arbitrary: fc.integer({ min: 1, max: 2 }) },
        { weight: 1, arbitrary: fc.constant(RETRY_ATTEMPTS) },
      ),
      slow: fc.integer({ min: 0, max: 3 }).map((n) => n === 0),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('finishStore' as const), pick: fc.nat(7) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('retry' as const), pick: fc.nat(7) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dup' as const), pick: fc.nat(7) }) },
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('lease' as const), pick: fc.nat(3) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('ack' as const), pick: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fail' as const), pick: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('crash' as const), pick: fc.nat(3) }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'expire' as const }) },
);

interface Scenario {
  /** Consumer processes running at once, per subscription. */
  consumers: number;
  batchSize: number;
  /** Subscriptions of the topic: every one must get every message. */
  subscriptions: number;
  /** Messages carry one of `keys` ordering keys and the topic hands each key out in order. */
  ordered: boolean;
  keys: number;
  ops: Op[];
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  consumers: fc.integer({ min: 1, max: 2 }),
  subscriptions: fc.integer({ min: 1, max: 2 }),
  ordered: fc.boolean(),
  keys: fc.integer({ min: 1, max: 3 }),
  batchSize: fc.integer({ min: 1, max: 3 }),
  // size 'max': lengths spread over the whole range, not fast-check's default bias towards short arrays.
  ops: fc.array(opArb, { minLength: 1, maxLength: 40, size: 'max' }),
});

// ---------------------------------------------------------------------------------------------------
// The world of one run

interface Payload {
  /** The producer's message number. */
  n: number;
  /** Its ordering key, in an ordered scenario. */
  key?: string;
  /** The send call's number (a resend of message n has another s). */
  s: number;
}

/** A handler's effect: what exactly-once must do once per message, at-least-once at least once. */
interface Effect {
  id: string;
  n: number;
  subscription: string;
}

type Outcome = 'ack' | 'fail' | 'crashed';

interface Delivery {
  proc: Proc;
  subscription: string;
  id: string;
  n: number;
  attempt: number;
  settle?: (outcome: Outcome) => void;
}

interface Proc {
  readonly name: string;
  /** The subscription its consumer reads. */
  readonly subscription: string;
  tidings?: Tidings<MemoryTransaction>;
  consumer?: { wake(): void };
  /** `busy` while the consumer runs on its own; `leasing`/`handling` while it waits for the test. */
  status: 'busy' | 'leasing' | 'handling';
  crashed: boolean;
  grantLease?: () => void;
  inFlight?: Delivery;
  /** Messages its last lease returned. */
  lastLeased: number;
}

interface RunOptions {
  /** The producer's way to the storage: the non-vacuity tests put a deliberately broken broker here. */
  producerView?: typeof StorageView;
  /** The consumers' way to it, likewise. */
  consumerView?: typeof StorageView;
}

interface SendRecord {
  n: number;
  s: number;
  id?: string;
  body: string;
  slow: boolean;
  failedStores: number;
  lostAcks: number;
  /** Store attempts planned to fail one way or the other: at `RETRY_ATTEMPTS` the send may fail. */
  faults: number;
  /** Store calls that got past their hold. */
  storeCalls: number;
  settled: boolean;
  ack?: SendAck;
  /** Whether the storage had stored the acked id when the ack reached the producer. */
  storedWhenAcked?: boolean;
  error?: unknown;
  /** Set while a store call of this send is held for the test (a slow store, or a retry). */
  grantStore?: () => void;
}

class World {
  readonly clock = new ManualClock(1_000_000);
  readonly inner: MemoryStorage = memoryStorage();
  readonly procs: Proc[] = [];
  readonly sends: SendRecord[] = [];
  readonly sendsByBody = new Map<string, SendRecord>();
  readonly deliveries: Delivery[] = [];
  readonly effects: Effect[] = [];
  /** Ids the storage actually inserted (not answered as duplicates), in store order, with their ordering key. */
  readonly stored = new Map<string, string | undefined>();
  /** Per subscription, the ids whose copy a committed settle finished: no longer holding their key. */
  readonly settled = new Map<string, Set<string>>();
  /** Handlers that started while an earlier-stored message of their key was unsettled in their subscription. */
  readonly outOfOrder: string[] = [];
  readonly errors: unknown[] = [];
  readonly trace: string[] = [];
  producer!: Tidings<MemoryTransaction>;
  topic!: Topic<Payload, MemoryTransaction>;
  holdStores = true;
  autoAck = false;
  tearingDown = false;
  activeStores = 0;
  private nextN = 0;
  private nextS = 0;
  private nextProc = 0;

  constructor(
    readonly kind: Kind,
    readonly scenario: Scenario,
    private readonly options: RunOptions = {},
  ) {}

  async start(): Promise<void> {
    this.producer = await this.instance(undefined);
    this.topic = this.producer.topic<Payload>(TOPIC, topicOptions(this.kind, this.scenario));
    await this.topic.ready();
    for (const subscription of subscriptionNames(this.scenario)) for (let i = 0; i < this.scenario.consumers; i++) await this.spawn(subscription);
  }

  private async instance(proc: Proc | undefined): Promise<Tidings<MemoryTransaction>> {
    const View = proc === undefined ? (this.options.producerView ?? StorageView) : (this.options.consumerView ?? StorageView);
    const tidings = await Tidings.create({ storage: new View(this, proc), clock: this.clock, purgeIntervalMs: 0 });
    // What a dead process reports is not the broker's doing.
    tidings.events.on('error', (e) => !proc?.crashed && this.errors.push(e.error));
    return tidings;
  }

  /** Starts a consumer process of a subscription and waits until it asks for its first lease. */
  async spawn(subscription: string): Promise<void> {
    const proc: Proc = { name: `c${++this.nextProc}`, subscription, status: 'busy', crashed: false, lastLeased: 0 };
    this.procs.push(proc);
    proc.tidings = await this.instance(proc);
    const topic = proc.tidings.topic<Payload>(TOPIC, topicOptions(this.kind, this.scenario));
    proc.consumer = topic.subscription(subscription).consume((m, ctx) => this.handle(proc, m, ctx), {
      batchSize: this.scenario.batchSize,
      concurrency: 1,
      pollMs: 1,
    });
    await this.quiet();
  }

  get live(): Proc[] {
    return this.procs.filter((p) => !p.crashed);
  }

  private async handle(proc: Proc, m: Message<Payload>, ctx: ConsumeContext<MemoryTransaction>): Promise<void> {
    const d: Delivery = { proc, subscription: m.subscription, id: m.id, n: m.payload.n, attempt: m.attempt };
    this.deliveries.push(d);
    this.trace.push(`${proc.name} handles ${m.id} (n=${m.payload.n}${m.key ? `, key ${m.key}` : ''}, attempt ${m.attempt}) in ${m.subscription}`);
    // A lease holds a key until its message is settled; at-most-once deletes at hand-out and promises no order across consumers.
    if (this.scenario.ordered && m.key !== undefined && this.kind !== 'at-most-once') {
      const done = this.settled.get(m.subscription) ?? new Set<string>();
      for (const [id, key] of this.stored) {
        if (id === m.id) break;
        if (key === m.key && !done.has(id))
          this.outOfOrder.push(`${m.subscription} started ${m.id} while ${id}, stored before it with key ${key}, was unsettled`);
      }
    }
    let outcome: Outcome = this.tearingDown ? 'crashed' : 'ack';
    if (!this.autoAck && !this.tearingDown) {
      outcome = await new Promise<Outcome>((resolve) => {
        d.settle = resolve;
        proc.inFlight = d;
        proc.status = 'handling';
      });
      proc.inFlight = undefined;
      proc.status = 'busy';
    }
    if (outcome === 'crashed') throw new Error(`${proc.name} crashed while handling ${m.id}`);
    if (outcome === 'fail') throw new Error(`handler of ${m.id} failed`);
    const effect = { id: m.id, n: m.payload.n, subscription: m.subscription };
    this.effects.push(effect);
    // Exactly-once: the effect is written in the handler's transaction, and undone if that transaction fails.
    // The other semantics run handlers outside any transaction: there `ctx.em` is undefined.
    (ctx.em as MemoryTransaction | undefined)?.undo.push(() => this.effects.splice(this.effects.indexOf(effect), 1));
  }

  /** What the view does on `store`: holds slow stores and retries, fails stores before writing, loses acks after. */
  async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    const rec = req.messages.length === 1 ? this.sendsByBody.get(req.messages[0]!.body) : undefined;
    if (rec && (rec.storeCalls > 0 || rec.slow) && this.holdStores) {
      if (rec.storeCalls === 0) this.trace.push(`store of n=${rec.n} is slow: held`);
      await new Promise<void>((resolve) => (rec.grantStore = resolve));
      rec.grantStore = undefined;
    }
    this.activeStores++;
    try {
      if (rec) rec.storeCalls++;
      if (rec && rec.failedStores > 0) {
        rec.failedStores--;
        this.trace.push(`store of n=${rec.n} failed before writing`);
        throw new StorageError('the store failed before writing anything', { code: 'STORAGE_ERROR' });
      }
      const results = await this.inner.store(req, tx);
      results.forEach((r, i) => !r.duplicate && this.stored.set(r.id, req.messages[i]!.key));
      this.trace.push(`stored ${results.map((r) => `${r.id}${r.duplicate ? ' (duplicate)' : ''}`).join(', ')}`);
      if (rec && rec.lostAcks > 0) {
        rec.lostAcks--;
        this.trace.push(`ack of ${results.map((r) => r.id).join(', ')} lost`);
        throw new StorageError('the ack was lost on the way back', { code: 'ACK_LOST', retryable: true });
      }
      return results;
    } finally {
      this.activeStores--;
    }
  }

  /** Waits until every actor waits for the test: consumers at a gated lease or in a handler, sends settled or at a gated retry. */
  async quiet(): Promise<void> {
    const deadline = Date.now() + STUCK_AFTER_MS;
    for (;;) {
      const consumersWait = this.procs.every((p) => p.status !== 'busy');
      const sendsWait = this.sends.every((s) => s.settled || s.grantStore !== undefined);
      if (consumersWait && sendsWait && this.activeStores === 0) return;
      if (Date.now() > deadline) {
        throw new Error(
          `stuck: consumers ${this.procs.map((p) => `${p.name}:${p.status}`).join(' ')}, ` +
            `sends ${this.sends
              .filter((s) => !s.settled)
              .map((s) => `n=${s.n}`)
              .join(' ')}, stores in flight ${this.activeStores}`,
        );
      }
      // Consumers that found nothing idle for pollMs; waking them is what a local send does too.
      for (const p of this.live) p.consumer?.wake();
      await new Promise((r) => setImmediate(r));
    }
  }

  private send(n: number, id: string | undefined, faults: { lostAcks?: number; failedStores?: number; slow?: boolean } = {}): void {
    const { lostAcks = 0, failedStores = 0, slow = false } = faults;
    const payload: Payload = { n, s: ++this.nextS, ...(this.scenario.ordered ? { key: `K${n % this.scenario.keys}` } : {}) };
    const body = JSON.stringify(payload);
    const rec: SendRecord = { n, s: payload.s, id, body, slow, failedStores, lostAcks, faults: failedStores + lostAcks, storeCalls: 0, settled: false };
    this.sends.push(rec);
    this.sendsByBody.set(body, rec);
    const planned = [slow && 'slow store', failedStores && `${failedStores} store(s) to fail`, lostAcks && `${lostAcks} ack(s) to lose`].filter(Boolean);
    this.trace.push(`send n=${n}${id ? ` as ${id}` : ''}${planned.length ? `, ${planned.join(', ')}` : ''}`);
    this.topic.send(payload, { ...(id === undefined ? {} : { id }), ...(payload.key === undefined ? {} : { key: payload.key }) }).then(
      (ack) => {
        rec.settled = true;
        rec.ack = ack;
        rec.storedWhenAcked = this.stored.has(ack.id);
        this.trace.push(`producer told: n=${n} acked as ${ack.id}${ack.duplicate ? ' (duplicate)' : ''}${rec.storedWhenAcked ? '' : ', not stored yet'}`);
      },
      (error: unknown) => {
        rec.settled = true;
        rec.error = error;
        this.trace.push(`producer told: n=${n} failed (${(error as { code?: string }).code ?? String(error)})`);
      },
    );
  }

  async apply(op: Op): Promise<void> {
    const exactlyOnce = this.kind.startsWith('exactly-once');
    switch (op.kind) {
      case 'send': {
        const n = ++this.nextN;
        // Exactly-once deduplicates by the producer's id; at-least-once tries both producer- and broker-made ids.
        const withId = exactlyOnce || (this.kind === 'at-least-once' && op.withId);
        this.send(n, withId ? `m-${n}` : undefined, op);
        break;
      }
      case 'finishStore': {
        const rec = pick(
          this.sends.filter((s) => s.grantStore !== undefined && s.storeCalls === 0),
          op.pick,
        );
        if (rec) {
          this.trace.push(`slow store of n=${rec.n} goes through`);
          rec.grantStore!();
          rec.grantStore = undefined;
        }
        break;
      }
      case 'retry': {
        if (this.kind === 'exactly-once/broker') {
          // No producer ack in broker scope: the app resends a send that was refused, under the same id.
          const refused = this.sends.filter((s) => s.settled && s.error !== undefined);
          const rec = pick(refused, op.pick);
          if (rec) this.send(rec.n, rec.id);
        } else {
          const waiting = this.sends.filter((s) => s.grantStore !== undefined && s.storeCalls > 0);
          const rec = pick(waiting, op.pick);
          if (rec) {
            this.trace.push(`producer retries n=${rec.n}`);
            rec.grantStore!();
            rec.grantStore = undefined;
          }
        }
        break;
      }
      case 'dup': {
        if (this.kind === 'at-most-once') break;
        const withIds = this.sends.filter((s) => s.id !== undefined);
        const rec = pick(withIds, op.pick);
        if (rec) this.send(rec.n, rec.id);
        break;
      }
      case 'lease': {
        const proc = pick(
          this.live.filter((p) => p.status === 'leasing'),
          op.pick,
        );
        if (proc) this.grant(proc);
        break;
      }
      case 'ack':
      case 'fail':
      case 'crash': {
        const d = pick(
          this.live.flatMap((p) => (p.inFlight ? [p.inFlight] : [])),
          op.pick,
        );
        if (!d) break;
        if (op.kind === 'crash') {
          this.trace.push(`${d.proc.name} crashes while handling ${d.id}`);
          d.proc.crashed = true;
          // The process dies: its open transaction rolls back (as a database does when the connection drops),
          // and its storage view refuses everything from now on.
          d.settle!('crashed');
          await this.spawn(d.proc.subscription);
        } else {
          this.trace.push(`${d.proc.name} ${op.kind}s ${d.id}`);
          d.proc.status = 'busy';
          d.settle!(op.kind);
        }
        break;
      }
      case 'expire':
        this.clock.advance(LEASE_MS + 1);
        this.trace.push(`clock +${LEASE_MS + 1} ms`);
        break;
    }
    await this.quiet();
  }

  private grant(proc: Proc): void {
    proc.status = 'busy';
    const grant = proc.grantLease!;
    proc.grantLease = undefined;
    grant();
  }

  /** Lets every held store through, acks every live handler, and moves the clock on until the topic is empty. */
  async drain(): Promise<void> {
    this.trace.push('-- drain --');
    this.holdStores = false;
    for (const s of this.sends) s.grantStore?.();
    this.autoAck = true;
    for (const p of this.live) {
      if (p.inFlight) {
        p.status = 'busy';
        p.inFlight.settle!('ack');
      }
    }
    await this.quiet();
    for (let round = 0; round < DRAIN_ROUNDS; round++) {
      this.clock.advance(LEASE_MS + 1);
      for (const p of this.live) {
        // Lease until a lease comes back empty, at least twice: the first call may still carry the time from
        // before the clock moved, and the sweep that requeues expired leases runs before the next one.
        let grants = 0;
        do {
          this.grant(p);
          await this.quiet();
        } while (++grants < 2 || p.lastLeased > 0);
      }
      if (round > 0 && (await this.rowsLeft()) === 0) return;
    }
    throw new Error(`the topic did not drain: ${JSON.stringify((await this.inner.counts(TOPIC))[TOPIC])}`);
  }

  async rowsLeft(): Promise<number> {
    const counts = topicTotals(await this.inner.counts(TOPIC))[TOPIC] ?? {};
    return Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
  }

  /** Closes every instance: crashed handlers finally throw (their lease long gone), gated calls return. */
  async close(): Promise<void> {
    this.tearingDown = true;
    this.holdStores = false;
    const closing = [this.producer, ...this.procs.map((p) => p.tidings)].filter((t) => t !== undefined).map((t) => t.close());
    for (const s of this.sends) s.grantStore?.();
    for (const p of this.procs) {
      p.grantLease?.();
      p.inFlight?.settle?.('crashed');
    }
    await Promise.all(closing);
    await this.inner.close();
  }
}

function pick<T>(items: T[], index: number): T | undefined {
  return items.length === 0 ? undefined : items[index % items.length];
}

/** One process's way to the shared memory storage: delegation plus the test's gates and its transaction handle. */
class StorageView implements StorageAdapter<MemoryTransaction> {
  readonly name = 'memory (fault-injecting view)';

  constructor(
    private readonly world: World,
    private readonly proc: Proc | undefined,
  ) {}

  /** A crashed process reaches the storage no more. */
  private alive(): void {
    if (this.proc?.crashed && !this.world.tearingDown) throw new Error(`${this.proc.name} is dead`);
  }

  async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    this.alive();
    return this.world.store(req, tx);
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const { world, proc } = this;
    if (proc && !world.tearingDown) {
      await new Promise<void>((resolve) => {
        proc.grantLease = resolve;
        proc.status = 'leasing';
      });
    }
    if (world.tearingDown) return [];
    const leased = await world.inner.lease(req);
    if (proc) proc.lastLeased = leased.length;
    if (leased.length > 0) world.trace.push(`${proc?.name} leased ${leased.map((m) => m.id).join(', ')} until ${req.leaseUntil}`);
    return leased;
  }

  async extendLease(req: ExtendLeaseRequest, tx?: MemoryTransaction): Promise<boolean> {
    this.alive();
    return this.world.inner.extendLease(req, tx);
  }

  async settle(req: SettleRequest, tx?: MemoryTransaction): Promise<string[]> {
    this.alive();
    const won = await this.world.inner.settle(req, tx);
    // A settle ends a copy's life; inside a transaction, only once that transaction commits.
    const done = () => {
      const set = this.world.settled.get(req.subscription) ?? new Set<string>();
      this.world.settled.set(req.subscription, set);
      for (const id of won) set.add(id);
    };
    if (tx) this.committed.get(tx)?.push(done);
    else done();
    return won;
  }

  /** What each open transaction settled, applied to the world when it commits. */
  private readonly committed = new WeakMap<MemoryTransaction, Array<() => void>>();

  async release(req: ReleaseRequest, tx?: MemoryTransaction): Promise<string[]> {
    this.alive();
    return this.world.inner.release(req, tx);
  }

  async expire(req: ExpireRequest, tx?: MemoryTransaction): Promise<StoredMessage[]> {
    this.alive();
    const moved = await this.world.inner.expire(req, tx);
    if (moved.length > 0) this.world.trace.push(`${this.proc?.name} moved expired ${moved.map((r) => r.id).join(', ')} to ${req.to}`);
    return moved;
  }

  async redrive(req: RedriveRequest): Promise<string[]> {
    this.alive();
    return this.world.inner.redrive(req);
  }

  counts(topic?: string): Promise<SubscriptionCounts> {
    return this.world.inner.counts(topic);
  }

  peek(req: PeekRequest): Promise<StoredMessage[]> {
    return this.world.inner.peek(req);
  }

  declareTopic(topic: TopicRecord): Promise<TopicRecord> {
    return this.world.inner.declareTopic(topic);
  }

  declareSubscription(subscription: SubscriptionRecord): Promise<SubscriptionRecord> {
    return this.world.inner.declareSubscription(subscription);
  }

  subscriptions(topic?: string): Promise<SubscriptionRecord[]> {
    return this.world.inner.subscriptions(topic);
  }

  removeSubscription(topic: string, name: string): Promise<number> {
    return this.world.inner.removeSubscription(topic, name);
  }

  topics(): Promise<TopicRecord[]> {
    return this.world.inner.topics();
  }

  purge(req: PurgeRequest): Promise<number> {
    return this.world.inner.purge(req);
  }

  /** The memory adapter's own transaction: if `fn` throws, the settle, the idempotency record and the handler's effect are undone. */
  async transaction<T>(fn: (tx: MemoryTransaction) => Promise<T>): Promise<T> {
    this.alive();
    const steps: Array<() => void> = [];
    const result = await this.world.inner.transaction((tx) => {
      this.committed.set(tx, steps);
      return fn(tx);
    });
    for (const step of steps) step();
    return result;
  }

  /** The memory adapter's own idempotency store, whose records roll back with the transaction. */
  idempotencyStore(): IdempotencyStore<MemoryTransaction> {
    return this.world.inner.idempotencyStore();
  }

  /** The shared storage is closed once, by the world. */
  async close(): Promise<void> {}
}

// ---------------------------------------------------------------------------------------------------
// The guarantees, checked on the history of one run

function count<T>(items: T[], key: (t: T) => string | number): Map<string | number, number> {
  const out = new Map<string | number, number>();
  for (const i of items) out.set(key(i), (out.get(key(i)) ?? 0) + 1);
  return out;
}

/** Error events the faults explain: a lost lease, and the lost acks and failed stores at-most-once reports only there. */
const EXPECTED_ERRORS = new Set(['LEASE_LOST', 'ACK_LOST', 'STORAGE_ERROR']);

/** What an acked send owes the producer: the send fails only when every attempt was faulted, and an ack means stored. */
function ackViolations(world: World): string[] {
  const out: string[] = [];
  for (const s of world.sends) {
    const name = s.id ?? `n=${s.n}`;
    if (s.error !== undefined && s.faults < RETRY_ATTEMPTS) {
      out.push(`send of ${name} failed although only ${s.faults} of its ${RETRY_ATTEMPTS} store attempts were faulted: ${String(s.error)}`);
    }
    if (s.ack && !s.storedWhenAcked) out.push(`send of ${name} was acked as ${s.ack.id} before the broker stored it`);
  }
  return out;
}

function violations(world: World): string[] {
  const out: string[] = [...world.outOfOrder];
  for (const error of world.errors) {
    const code = (error as { code?: string }).code;
    if (code === undefined || !EXPECTED_ERRORS.has(code)) out.push(`unexpected error event: ${String(error)}`);
  }
  if (world.kind === 'at-least-once' || world.kind === 'exactly-once/end-to-end') out.push(...ackViolations(world));
  // Every subscription must get every message: each is checked on its own effects.
  for (const subscription of subscriptionNames(world.scenario)) {
    const effects = world.effects.filter((e) => e.subscription === subscription);
    const effectsById = count(effects, (e) => e.id);
    const effectsByN = count(effects, (e) => e.n);
    const where = world.scenario.subscriptions > 1 ? ` in ${subscription}` : '';
    switch (world.kind) {
      case 'at-most-once':
        for (const [id, k] of count(
          world.deliveries.filter((d) => d.subscription === subscription),
          (d) => d.id,
        ))
          if (k > 1) out.push(`message ${id} was delivered ${k} times${where}`);
        break;
      case 'at-least-once':
        for (const s of world.sends) {
          if (!s.ack) continue;
          if (!effectsById.has(s.ack.id)) out.push(`acked message ${s.ack.id} (n=${s.n}) was never handled${where}`);
          if (!effectsByN.has(s.n)) out.push(`message n=${s.n} was acked but no copy of it was handled${where}`);
        }
        break;
      case 'exactly-once/broker':
        for (const id of world.stored.keys()) if (!effectsById.has(id)) out.push(`stored message ${id} was never consumed${where}`);
        for (const [id, k] of effectsById) if (k > 1) out.push(`message ${id} was consumed ${k} times${where}`);
        break;
      case 'exactly-once/end-to-end': {
        const made = new Set(world.sends.map((s) => s.id!));
        const acked = new Set(world.sends.filter((s) => s.ack !== undefined).map((s) => s.id!));
        for (const id of made) {
          const k = effectsById.get(id) ?? 0;
          // A message none of whose sends was acked was refused, and the producer was told: it need not be consumed, but never twice.
          if (acked.has(id) ? k !== 1 : k > 1)
            out.push(`message ${id} made by the producer${acked.has(id) ? ' and acked' : ''} was consumed ${k} times${where}`);
        }
        for (const id of effectsById.keys()) if (!made.has(String(id))) out.push(`consumed ${id}, which the producer never made${where}`);
        break;
      }
    }
  }
  return out;
}

/** Runs one scenario and returns what it broke (empty when every guarantee held). */
async function run(kind: Kind, scenario: Scenario, options: RunOptions = {}): Promise<{ broken: string[]; trace: string[]; world: World }> {
  const world = new World(kind, scenario, options);
  try {
    await world.start();
    for (const op of scenario.ops) await world.apply(op);
    await world.drain();
    return { broken: violations(world), trace: world.trace, world };
  } finally {
    await world.close();
  }
}

function guarantee(kind: Kind, options: RunOptions = {}) {
  return fc.asyncProperty(scenarioArb, async (scenario) => {
    const { broken, trace } = await run(kind, scenario, options);
    if (broken.length > 0) throw new Error(`${broken.join('\n')}\n\nwhat happened:\n  ${trace.join('\n  ')}`);
  });
}

async function holds(kind: Kind): Promise<void> {
  try {
    await fc.assert(guarantee(kind), { seed: SEED, numRuns: NUM_RUNS });
  } catch (error) {
    console.error(`${kind} property failed; replay with TIDINGS_SEED=${SEED}`);
    throw error;
  }
}

/**
 * A deliberately broken broker: it answers a store at once, as if written, and leaves the write (slow, or
 * failing) to finish on its own, as a build that acked before its write was durable would.
 */
class AckBeforeStoreView extends StorageView {
  override async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    void super.store(req, tx).catch(() => undefined);
    return req.messages.map((m) => ({ id: m.id, duplicate: false }));
  }
}

/** A deliberately broken broker whose leases ignore ordering keys, as a build that dropped the key check would. */
class IgnoreKeysView extends StorageView {
  override lease(req: LeaseRequest): Promise<StoredMessage[]> {
    return super.lease({ ...req, keyHeldIn: undefined });
  }
}

describe(`delivery guarantees under random sends, slow and failing stores, lost acks, retries, leases, crashes and lease expiry (TIDINGS_SEED=${SEED})`, () => {
  it('at-most-once: no message is ever delivered twice', () => holds('at-most-once'));

  it('at-least-once: every message whose send was acked is handled at least once', () => holds('at-least-once'));

  it('exactly-once, broker scope: every stored message is consumed, and none twice', () => holds('exactly-once/broker'));

  it('exactly-once, end-to-end (the default scope): every message the producer made and was acked for is consumed exactly once, none twice', () =>
    holds('exactly-once/end-to-end'));

  it.each(['at-least-once', 'exactly-once/end-to-end'] as const)(
    'the %s check catches a broker that acks before its store has written (the property is not vacuous)',
    async (kind) => {
      const result = await fc.check(guarantee(kind, { producerView: AckBeforeStoreView }), { seed: SEED, numRuns: NUM_RUNS });
      expect(result.failed).toBe(true);
      const [scenario] = result.counterexample!;
      // Shrunk to what matters: a send whose store was slow or failed; a lost ack after a write cannot show it.
      expect(scenario.ops.some((op) => op.kind === 'send' && (op.slow || op.failedStores > 0))).toBe(true);
      expect(String((result.errorInstance as Error).message)).toMatch(/before the broker stored it/);
    },
  );

  it.each(['at-least-once', 'exactly-once/end-to-end'] as const)(
    'the %s check catches a broker whose leases ignore ordering keys (order is not vacuous)',
    async (kind) => {
      const result = await fc.check(guarantee(kind, { consumerView: IgnoreKeysView }), { seed: SEED, numRuns: NUM_RUNS });
      expect(result.failed).toBe(true);
      const [scenario] = result.counterexample!;
      expect(scenario.ordered).toBe(true);
      expect(String((result.errorInstance as Error).message)).toMatch(/started .* while .* stored before it with key .* was unsettled/);
    },
  );
});

describe('regression, pinned from a shrunk counterexample', () => {
  // The first handler finishes after its lease expired: its transaction fails, and must leave no idempotency
  // record behind, or the redelivery is skipped as a duplicate and the message is consumed 0 times.
  const scenario: Scenario = {
    consumers: 2,
    batchSize: 1,
    subscriptions: 1,
    ordered: false,
    keys: 1,
    ops: [
      { kind: 'send', lostAcks: 0, withId: true, failedStores: 0, slow: false },
      { kind: 'lease', pick: 0 },
      { kind: 'expire' },
      { kind: 'lease', pick: 0 },
    ],
  };

  it("exactly-once over the memory adapter's own idempotency store consumes a message whose first handler outlived its lease", async () => {
    const { broken, trace, world } = await run('exactly-once/end-to-end', scenario);
    expect(broken, trace.join('\n')).toEqual([]);
    // The scenario does what it pins: the first handler lost its lease, and the redelivery was consumed, once.
    expect(world.errors.map((e) => (e as { code?: string }).code)).toContain('LEASE_LOST');
    expect(world.deliveries.map((d) => d.attempt)).toEqual([1, 2]);
    expect(world.effects).toEqual([{ id: 'm-1', n: 1, subscription: 's0' }]);
  });
});

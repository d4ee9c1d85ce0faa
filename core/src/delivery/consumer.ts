import { createActor, type Actor } from 'xstate';
import {
  resolveConsumeOptions,
  resolveGraceMs,
  type BatchContext,
  type BatchHandler,
  type ConsumeContext,
  type ConsumeOptions,
  type Handler,
  type Message,
  type StopOptions,
} from './consume.js';
import { batchDeliveryFor, type Failures } from './batch.js';
import { consumerMachine, type ConsumerWork } from './consumer-machine.js';
import type { Delivery } from './context.js';
import { deliveryFor } from './strategies.js';
import { InvalidOptionsError, LeaseLostError, TidingsError } from '../errors.js';
import { parseHeaders } from '../headers.js';
import { Settler } from './settler.js';
import type { StoredMessage } from '../storage/contract.js';
import type { SubscriptionRuntime } from './runtime.js';

/** What a consumer runs: a handler per message, or one per leased batch. */
export type Handling<T, Tx> = { readonly each: Handler<T, Tx> } | { readonly batch: BatchHandler<T, Tx> };

/**
 * A consumer actor: leases batches, runs the handler, and settles each message as its lifecycle says. Its life
 * (starting, leasing, handling, idle, paused, draining, stopped) is `consumerMachine`; this class carries out each step.
 */
export class Consumer<T = unknown, Tx = unknown> {
  private readonly options: Required<ConsumeOptions>;
  private readonly abortController = new AbortController();
  private readonly actor: Actor<typeof consumerMachine>;
  private readonly done: Promise<void>;
  private readonly settler: Settler;
  private readonly delivery: Delivery;
  private readonly unwatch?: () => void;
  /** The lease or batch in flight, which a drain waits for. */
  private inFlight: Promise<unknown> = Promise.resolve();
  /** A batch leased but not yet handed to its handlers (a stop may come in between). */
  private unhandled?: StoredMessage[];
  /** The failure the loop keeps hitting, logged once: its code, since when, how often. */
  private failing?: { code: string; since: number; times: number };
  /** Set when the grace period ran out: whatever a handler still returns is not settled. */
  private abandoned = false;
  private readonly abandonController = new AbortController();

  /** @internal */
  constructor(
    private readonly s: SubscriptionRuntime,
    handling: Handling<T, Tx>,
    options: ConsumeOptions,
  ) {
    this.options = resolveConsumeOptions(options, 'batch' in handling ? 'consumeBatch()' : 'consume()');
    this.settler = new Settler(s, () => this.abandoned);
    const common = { s, settler: this.settler, abandoned: () => this.abandoned, abandonSignal: this.abandonController.signal };
    this.delivery =
      'batch' in handling
        ? batchDeliveryFor<Tx>({ ...common, handle: (batch, tx) => this.runBatch(handling.batch, batch, tx as Tx) })
        : deliveryFor<Tx>({ ...common, concurrency: this.options.concurrency, handle: (m, em) => this.run(handling.each, m, em as () => Tx) });
    this.actor = createActor(consumerMachine, { input: { work: this.work(), pollMs: this.options.pollMs } });
    this.done = new Promise((resolve) => this.actor.subscribe({ complete: resolve }));
    this.unwatch = s.topic.storage.watch?.(s.topic.name, () => this.wake());
    this.actor.start();
  }

  /** The consumer's state: `starting`, `leasing`, `handling`, `idle`, `paused`, `draining` or `stopped`. */
  get state(): string {
    return String(this.actor.getSnapshot().value);
  }

  /** Wakes the consumer to poll now (after a local send). */
  wake(): void {
    this.actor.send({ type: 'WAKE' });
  }

  /** Its subscription was paused: lease nothing more once the batch in hand is done. */
  pause(): void {
    this.actor.send({ type: 'PAUSE' });
  }

  /** Its subscription was resumed: lease again. */
  resume(): void {
    this.actor.send({ type: 'RESUME' });
  }

  /**
   * Stops leasing, aborts `ctx.signal`, then waits up to `graceMs` for handlers in flight and settles them.
   * Resolves when drained, or when the grace period runs out (see `StopOptions`). Calling it again returns the same promise.
   */
  stop(options: StopOptions = {}): Promise<void> {
    let graceMs: number;
    try {
      graceMs = resolveGraceMs(options);
    } catch (error) {
      return Promise.reject(error);
    }
    this.actor.send({ type: 'STOP', graceMs });
    return this.done;
  }

  /** The steps the machine calls for. */
  private work(): ConsumerWork {
    const { s } = this;
    return {
      start: async () => {
        await s.declaration.declared;
        await s.topic.pauses.follow(s);
      },
      paused: () => s.paused,
      lease: () => this.track(this.lease()),
      handle: (batch) => {
        this.unhandled = undefined;
        return this.track(this.delivery.process(batch));
      },
      drain: async () => {
        await this.inFlight.catch(() => undefined);
        // Leased just before the stop: still handled, not left leased until it expires.
        const batch = this.unhandled;
        this.unhandled = undefined;
        if (batch) await this.delivery.process(batch).catch((error: unknown) => this.failed(error, false));
        await this.settler.settled();
      },
      abort: () => this.abortController.abort(),
      abandon: (graceMs) => {
        this.abandoned = true;
        this.abandonController.abort();
        s.topic.logger.warn(
          `consumer stopped with handlers still running after ${graceMs} ms; their messages stay leased until the lease expires, then are redelivered`,
          this.where(),
        );
      },
      failed: (error, starting) => this.failed(error, starting),
      stopped: () => {
        this.unwatch?.();
        s.consumers.delete(this);
      },
    };
  }

  /** Where this consumer's log lines and error events come from. */
  private where(): { topic: string; subscription: string } {
    return { topic: this.s.topic.name, subscription: this.s.name };
  }

  private failed(error: unknown, starting: boolean): void {
    const { topic } = this.s;
    topic.events.emit('error', { ...this.where(), error, at: topic.clock.now() });
    if (starting)
      return topic.logger.error(`consumer of topic "${topic.name}" (subscription "${this.s.name}") did not start: ${(error as Error).message}`, this.where());
    // Logged once per episode: a full disk or a database down fails every poll, and the log must not drown in it.
    const code = error instanceof TidingsError ? error.code : String(error);
    if (this.failing?.code === code) return void this.failing.times++;
    this.failing = { code, since: topic.clock.now(), times: 1 };
    topic.logger.error('consumer loop failed; retrying (said once until it recovers or fails otherwise)', { ...this.where(), error: String(error) });
  }

  /** A step worked again: the episode of failures, if any, is over. */
  private recovered(): void {
    if (!this.failing) return;
    const { code, since, times } = this.failing;
    this.failing = undefined;
    this.s.topic.logger.warn('consumer loop recovered', { ...this.where(), error: code, failures: times, forMs: this.s.topic.clock.now() - since });
  }

  private track<R>(work: Promise<R>): Promise<R> {
    this.inFlight = work;
    return work;
  }

  private async lease(): Promise<StoredMessage[]> {
    const { s } = this;
    await s.sweeper.sweep();
    const batch = await s.ledger.lease({ limit: this.options.batchSize, leaseMs: s.options.leaseMs, leaseToken: s.topic.ids.next() });
    if (this.failing) this.recovered();
    if (batch.length > 0) this.unhandled = batch;
    return batch;
  }

  /** Runs the handler on one message, inside the plugins' `handle` wrappers when there are any. */
  private run(handler: Handler<T, Tx>, m: StoredMessage, em: () => Tx): Promise<void> {
    const { topic } = this.s;
    // A handler that throws before it returns a promise fails the same way as one whose promise rejects.
    try {
      const message = this.message(m);
      const context = this.context([m], em);
      const wrap = topic.plugins.handle;
      if (!wrap) return Promise.resolve(handler(message, context));
      const ctx = { topic: topic.name, subscription: this.s.name, lifecycle: topic.plan.lifecycle, message, context: context as ConsumeContext<unknown> };
      return wrap(ctx, () => Promise.resolve(handler(message, context)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * Runs a batch handler on a leased batch, inside the plugins' `handleBatch` wrappers when there are any; resolves to
   * the messages it marked failed (a throw, the handler's or a wrapper's, is the caller's to take).
   */
  private async runBatch(handler: BatchHandler<T, Tx>, batch: StoredMessage[], tx: Tx): Promise<Failures> {
    const { topic } = this.s;
    const messages = batch.map((m) => this.message(m));
    const byId = new Map(batch.map((m) => [m.id, m]));
    // By id, as plugins see it (`ctx.failed`); as stored messages for the delivery once the run is over.
    const failed = new Map<string, unknown>();
    const failures = (): Failures => new Map([...failed].map(([id, error]) => [byId.get(id)!, error]));
    // Object.assign, not a spread: the context's `em` is a getter.
    const context: BatchContext<Tx> = Object.assign(
      this.context(batch, () => tx),
      {
        fail: (message: Message<T> | string, error?: unknown) => {
          const id = typeof message === 'string' ? message : message?.id;
          const m = byId.get(id as string);
          if (!m)
            throw new InvalidOptionsError(
              `ctx.fail() was given ${JSON.stringify(id) ?? String(id)}, which is not a message of this batch: pass one of the messages the handler got, or its id.`,
            );
          failed.set(m.id, error ?? new Error(`message ${m.id} marked failed by its batch handler`));
        },
      },
    );
    const wrap = topic.plugins.handleBatch;
    if (!wrap) {
      await handler(messages, context);
      return failures();
    }
    const ctx = { topic: topic.name, subscription: this.s.name, lifecycle: topic.plan.lifecycle, messages, context: context as BatchContext<unknown>, failed };
    await wrap(ctx, async () => {
      await handler(messages, context);
    });
    return failures();
  }

  private message(m: StoredMessage): Message<T> {
    const message: Message<T> = {
      id: m.id,
      topic: m.topic,
      subscription: this.s.name,
      payload: JSON.parse(m.body) as T,
      attempt: m.deliveries,
      createdAt: m.createdAt,
      headers: parseHeaders(m.headers),
    };
    if (m.key !== undefined) message.key = m.key;
    return message;
  }

  /** The context of a handler run over `leased` (one message, or a batch whose leases `extendLease` pushes out together). */
  private context(leased: StoredMessage[], em: () => Tx): ConsumeContext<Tx> {
    const { s } = this;
    return {
      // A getter: where handlers share a transaction, their handle of their own is made only if one asks for it.
      get em() {
        return em();
      },
      signal: this.abortController.signal,
      extendLease: async (ms: number) => {
        if (!Number.isFinite(ms) || ms <= 0) throw new InvalidOptionsError(`extendLease(ms) needs ms > 0, got ${String(ms)}.`);
        for (const m of leased) {
          // Inside the handler's transaction, so a single-connection database does not wait on itself.
          const ok = await s.ledger.extendLease(m, ms, em() ?? undefined);
          if (!ok) throw new LeaseLostError(s.topic.name, m.id);
        }
      },
    };
  }
}

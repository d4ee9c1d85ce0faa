import { InvalidOptionsError, LeaseLostError } from './errors.js';
import { MAX_TIMER_MS } from './options.js';
import { describeError, firstLine } from './runtime.js';
import type { StoredMessage } from './storage.js';
import { TransactionalInbox } from './inbox.js';
import { nack, settle } from './settle.js';
import { LeaseSweeper } from './sweep.js';
import { emitSteps, type TopicRuntime } from './topic-runtime.js';

/** A delivered message as a handler sees it. */
export interface Message<T = unknown> {
  id: string;
  topic: string;
  payload: T;
  /** 1 on the first delivery, 2 on the first redelivery, ... */
  attempt: number;
  /** When the message was stored (epoch ms). */
  createdAt: number;
}

/** What a handler can do besides returning (ack) or throwing (nack). */
export interface ConsumeContext<Tx = unknown> {
  /** The transaction the message's consumption commits in (exactly-once), or undefined. */
  em: Tx;
  /** Keep the lease for `ms` more from now; throws `LeaseLostError` if it was already lost. */
  extendLease(ms: number): Promise<void>;
  /** Aborted as soon as the consumer starts stopping: a long handler can return early (and be redelivered) or finish. */
  signal: AbortSignal;
}

/** A message handler: return to ack, throw to nack (redelivered after a backoff). */
export type Handler<T, Tx = unknown> = (message: Message<T>, ctx: ConsumeContext<Tx>) => Promise<void> | void;

/** How a consumer pulls and runs messages. */
export interface ConsumeOptions {
  /** Handlers running at once (default 1). */
  concurrency?: number;
  /** Messages leased per round-trip (default 10). */
  batchSize?: number;
  /** How long to wait before polling again when the topic is empty, in ms (default 100). */
  pollMs?: number;
}

/** How long `stop()` waits for handlers in flight by default, in ms (what Kubernetes gives a pod to terminate). */
export const DEFAULT_GRACE_MS = 30_000;

/** How a consumer stops. */
export interface StopOptions {
  /**
   * How long to wait for handlers in flight after aborting `ctx.signal`, in ms (default 30,000). Past it, `stop()`
   * resolves anyway: a handler still running is abandoned, its outcome discarded, and its message stays leased
   * until the lease expires, then is redelivered (never acked, never lost).
   */
  graceMs?: number;
}

function validate(o: ConsumeOptions): Required<ConsumeOptions> {
  const out = { concurrency: o.concurrency ?? 1, batchSize: o.batchSize ?? 10, pollMs: o.pollMs ?? 100 };
  for (const [k, v] of Object.entries(out)) {
    // pollMs becomes a timer, and Node fires a longer timer than MAX_TIMER_MS after 1 ms (a busy poll).
    const max = k === 'pollMs' ? MAX_TIMER_MS : Infinity;
    if (!Number.isInteger(v) || v < 1 || v > max) {
      throw new InvalidOptionsError(`Consumer option ${k} must be an integer >= 1${max === Infinity ? '' : ` and <= ${max}`}, got ${String(v)}.`);
    }
  }
  return out;
}

/** A consumer actor: leases batches, runs the handler, and settles each message as its lifecycle says. */
export class Consumer<T = unknown, Tx = unknown> {
  private readonly options: Required<ConsumeOptions>;
  private readonly abort = new AbortController();
  private readonly loop: Promise<void>;
  private wakeUp: (() => void) | undefined;
  private stopped = false;
  private woken = false;
  private settling: Promise<void> = Promise.resolve();
  private stopping: Promise<void> | undefined;
  /** Set when the grace period ran out: whatever a handler still returns is not settled. */
  private abandoned = false;
  private readonly unwatch?: () => void;
  private readonly inbox: TransactionalInbox<Tx>;
  private readonly sweeper: LeaseSweeper;

  /** @internal */
  constructor(
    private readonly rt: TopicRuntime,
    private readonly handler: Handler<T, Tx>,
    options: ConsumeOptions,
  ) {
    this.options = validate(options);
    this.inbox = new TransactionalInbox<Tx>({
      rt,
      concurrency: this.options.concurrency,
      handle: (m, tx) => Promise.resolve(this.handler(this.message(m), this.context(m, tx))),
      abandoned: () => this.abandoned,
    });
    this.sweeper = new LeaseSweeper(rt);
    this.unwatch = rt.storage.watch?.(rt.name, () => this.wake());
    this.loop = this.run();
  }

  /** Wakes the consumer to poll now (after a local send). */
  wake(): void {
    // A wake-up that arrives while a lease is in flight must not be lost, or the next idle waits a full poll.
    this.woken = true;
    this.wakeUp?.();
  }

  /**
   * Stops leasing, aborts `ctx.signal`, then waits up to `graceMs` for handlers in flight and settles them.
   * Resolves when drained, or when the grace period runs out (see `StopOptions`). Calling it again returns the same promise.
   */
  stop(options: StopOptions = {}): Promise<void> {
    const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    if (!Number.isInteger(graceMs) || graceMs < 0 || graceMs > MAX_TIMER_MS) {
      return Promise.reject(new InvalidOptionsError(`stop({ graceMs }) must be an integer from 0 to ${MAX_TIMER_MS} ms, got ${String(graceMs)}.`));
    }
    this.stopping ??= this.drain(graceMs);
    return this.stopping;
  }

  private async drain(graceMs: number): Promise<void> {
    const { rt } = this;
    this.stopped = true;
    this.abort.abort();
    this.wake();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outOfTime = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), graceMs)));
    const drained = (async () => {
      await this.loop;
      await this.settling;
      return false;
    })();
    if (await Promise.race([drained, outOfTime])) {
      this.abandoned = true;
      rt.logger.warn(`consumer stopped with handlers still running after ${graceMs} ms; their messages stay leased until the lease expires, then are redelivered`, { topic: rt.name });
    }
    clearTimeout(timer);
    this.unwatch?.();
    rt.consumers.delete(this);
  }

  private async run(): Promise<void> {
    const { rt } = this;
    try {
      await rt.declaration.declared;
    } catch (error) {
      rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
      rt.logger.error(`consumer of topic "${rt.name}" did not start: ${(error as Error).message}`, { topic: rt.name });
      return;
    }
    while (!this.stopped) {
      try {
        await this.sweeper.sweep();
        this.woken = false;
        const batch = await this.lease();
        if (batch.length === 0) {
          await this.idle();
          continue;
        }
        await this.process(batch);
      } catch (error) {
        rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
        rt.logger.error('consumer loop failed; retrying', { topic: rt.name, error: String(error) });
        await this.idle();
      }
    }
  }

  private idle(): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeUp = undefined;
        this.woken = false;
        resolve();
      };
      const timer = setTimeout(done, this.options.pollMs);
      this.wakeUp = done;
    });
  }

  private async lease(): Promise<StoredMessage[]> {
    const { rt } = this;
    const now = rt.clock.now();
    const { plan } = rt;
    const leased = await rt.storage.lease({
      topic: rt.name,
      from: plan.ready,
      to: plan.leased,
      limit: this.options.batchSize,
      now,
      leaseUntil: now + rt.options.leaseMs,
      leaseToken: rt.ids.next(),
      remove: plan.removeOnLease,
    });
    for (const m of leased) emitSteps(rt, m.id, plan.steps.lease);
    return leased;
  }

  private async process(batch: StoredMessage[]): Promise<void> {
    const { rt } = this;
    const { plan } = rt;
    if (plan.delivery === 'remove-on-lease') {
      await this.runAll(batch, async (m) => {
        try {
          await this.handler(this.message(m), this.context(m, undefined as Tx));
        } catch (error) {
          rt.events.emit('handlerError', { id: m.id, topic: rt.name, deliveries: m.deliveries, error, at: rt.clock.now() });
          rt.logger.warn('handler failed; at-most-once never redelivers, the message is gone', { topic: rt.name, id: m.id, error: firstLine(describeError(error)) });
          return;
        }
        emitSteps(rt, m.id, plan.steps.handled);
      });
      return;
    }
    if (plan.delivery === 'ack-after-handler') {
      const acked: StoredMessage[] = [];
      const failed: Array<[StoredMessage, unknown]> = [];
      await this.runAll(batch, async (m) => {
        try {
          await this.handler(this.message(m), this.context(m, undefined as Tx));
          acked.push(m);
        } catch (error) {
          failed.push([m, error]);
        }
      });
      // Settling overlaps the next lease and handlers; one settle in flight at a time keeps order and bounds memory.
      const previous = this.settling;
      this.settling = (async () => {
        await previous;
        if (this.abandoned) return;
        try {
          await settle(rt, acked, plan.steps.handled);
          await nack(rt, failed);
        } catch (error) {
          // Unsettled leases expire and the messages are redelivered: at-least-once still holds.
          rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
          rt.logger.error('settling a batch failed; its messages will be redelivered when their leases expire', { topic: rt.name, error: String(error) });
        }
      })();
      return;
    }
    await this.inbox.process(batch);
  }

  private async runAll(items: StoredMessage[], work: (m: StoredMessage) => Promise<void>): Promise<void> {
    let next = 0;
    const worker = async () => {
      while (next < items.length) await work(items[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, items.length) }, worker));
  }

  private message(m: StoredMessage): Message<T> {
    return { id: m.id, topic: m.topic, payload: JSON.parse(m.body) as T, attempt: m.deliveries, createdAt: m.createdAt };
  }

  private context(m: StoredMessage, em: Tx): ConsumeContext<Tx> {
    const { rt } = this;
    return {
      em,
      signal: this.abort.signal,
      extendLease: async (ms: number) => {
        if (!Number.isFinite(ms) || ms <= 0) throw new InvalidOptionsError(`extendLease(ms) needs ms > 0, got ${String(ms)}.`);
        // Inside the handler's transaction, so a single-connection database does not wait on itself.
        const now = rt.clock.now();
        const ok = await rt.storage.extendLease({ topic: rt.name, state: rt.plan.leased, item: m, leaseUntil: now + ms, now }, em ?? undefined);
        if (!ok) throw new LeaseLostError(rt.name, m.id);
      },
    };
  }
}

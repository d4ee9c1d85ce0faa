import { LeaseLostError } from '../errors.js';
import type { TransitionStep } from '../lifecycle/table.js';
import { backoffDelay } from '../options.js';
import { describeError, firstLine } from '../services.js';
import type { StoredMessage } from '../storage/contract.js';
import type { Failure } from './ledger.js';
import type { SubscriptionRuntime } from './runtime.js';

/** What settling needs of a subscription. */
export type SettleContext = Pick<SubscriptionRuntime, 'topic' | 'name' | 'options' | 'ledger'>;

/** Where a log line or an error event happened. */
function where(s: SettleContext): { topic: string; subscription: string } {
  return { topic: s.topic.name, subscription: s.name };
}

/** A handler outlived its lease: visible by default, since it means leaseMs is too short for the handler. */
export function leaseLost(s: SettleContext, m: StoredMessage): void {
  const error = new LeaseLostError(s.topic.name, m.id);
  s.topic.events.emit('error', { ...where(s), error, at: s.topic.clock.now() });
  s.topic.logger.warn(error.message, where(s));
}

/** Takes messages along `steps` (a plan's path that ends their life) as one compare-and-set, reporting each lease lost. */
export async function settle(s: SettleContext, items: StoredMessage[], steps: readonly TransitionStep[]): Promise<string[]> {
  const won = await s.ledger.settle(items, steps);
  // A lease that lost its compare-and-set means the message went to another consumer; a consumed row deleted by
  // someone else (another consumer's first sweep) is done, not lost.
  if (items.length > 0 && steps[0]!.from === s.topic.plan.leased && won.length < items.length) {
    const settled = new Set(won);
    for (const m of items) if (!settled.has(m.id)) leaseLost(s, m);
  }
  return won;
}

/** Failed deliveries: each reported, then released through the ledger (back after a backoff, or dead), and logged as what it became. */
export async function nack(s: SettleContext, failed: ReadonlyArray<readonly [StoredMessage, unknown]>): Promise<void> {
  if (failed.length === 0) return;
  const { events, clock, logger } = s.topic;
  const now = clock.now();
  const failures: Failure[] = failed.map(([m, error]) => {
    events.emit('handlerError', { id: m.id, ...where(s), deliveries: m.deliveries, error, at: now });
    return { message: m, availableAt: now + backoffDelay(s.options.backoff, m.deliveries), error: describeError(error), cause: error };
  });
  const { retried, dead } = await s.ledger.release(failures);
  const back = new Set(retried.map((m) => m.id));
  const died = new Set(dead.map((m) => m.id));
  const deadLetter = s.ledger.deadLetter?.topic.name;
  for (const f of failures) {
    const m = f.message;
    const at = { ...where(s), id: m.id, attempt: m.deliveries, error: firstLine(f.error ?? '') };
    if (back.has(m.id)) logger.warn(`handler failed; redelivering in ${f.availableAt - now} ms`, at);
    else if (died.has(m.id)) logger.error(`handler failed ${m.deliveries} time(s); message dead-lettered${deadLetter ? ` to ${deadLetter}` : ''}`, at);
    // Its lease expired (another delivery has it) or its consumption committed after all (a lost commit ack).
    else logger.warn('delivery failed, but the message had already left its lease; nothing to redeliver', at);
  }
}

/**
 * Settles handled batches in the background: one batch's acks in one compare-and-set and its nacks in one release
 * per target, one batch after another, so settling overlaps the next lease and handlers while keeping order.
 */
export class Settler {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly s: SettleContext,
    /** Whether the consumer stopped waiting: outcomes that come in after that are not settled. */
    private readonly abandoned: () => boolean,
  ) {}

  /** Queues a batch's outcomes: `acked` along `steps`, `failed` nacked. */
  enqueue(acked: StoredMessage[], steps: readonly TransitionStep[], failed: Array<[StoredMessage, unknown]>): void {
    const { s } = this;
    this.tail = this.tail.then(async () => {
      if (this.abandoned()) return;
      try {
        await settle(s, acked, steps);
        await nack(s, failed);
      } catch (error) {
        // Unsettled leases expire and the messages are redelivered: at-least-once still holds.
        s.topic.events.emit('error', { ...where(s), error, at: s.topic.clock.now() });
        s.topic.logger.error('settling a batch failed; its messages will be redelivered when their leases expire', { ...where(s), error: String(error) });
      }
    });
  }

  /** Adds work already under way to what `settled()` waits for: an exactly-once batch committing in the background. */
  track(work: Promise<void>): void {
    const { s } = this;
    const reported = work.catch((error: unknown) => {
      s.topic.events.emit('error', { ...where(s), error, at: s.topic.clock.now() });
      s.topic.logger.error('consuming a batch failed; its messages will be redelivered when their leases expire', { ...where(s), error: String(error) });
    });
    this.tail = Promise.all([this.tail, reported]).then(() => undefined);
  }

  /** Resolves once everything queued so far is settled. */
  settled(): Promise<void> {
    return this.tail;
  }
}

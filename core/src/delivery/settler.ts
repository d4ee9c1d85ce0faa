import { LeaseLostError } from '../errors.js';
import { backoffDelay } from '../options.js';
import { releaseLeases, requests, type Failure } from '../storage/requests.js';
import { describeError, firstLine } from '../services.js';
import type { StoredMessage } from '../storage/contract.js';
import type { TransitionStep } from '../lifecycle/table.js';
import { emitSteps, notify, type TopicRuntime } from './runtime.js';

/** What settling needs of a topic. */
export type SettleContext = Pick<TopicRuntime, 'name' | 'options' | 'plan' | 'storage' | 'clock' | 'logger' | 'events' | 'deadLetter'>;

/** Emits a message's DEAD transition (to the state the machine chose and storage moved it to) and the `deadLetter` event. */
export function emitDead(rt: SettleContext, m: Pick<StoredMessage, 'id' | 'deliveries' | 'state'>, at: number, error?: unknown): void {
  emitSteps(rt, m.id, [{ from: rt.plan.leased, event: 'DEAD', to: m.state }]);
  rt.events.emit('deadLetter', { id: m.id, topic: rt.name, deadLetter: rt.deadLetter?.name, deliveries: m.deliveries, at, error });
}

/** Dead-letter copies are stores into the dead-letter topic: its STORE transitions, and its consumers woken. */
export function emitCopies(rt: SettleContext, copied: readonly string[]): void {
  const dl = rt.deadLetter;
  if (!dl || copied.length === 0) return;
  for (const id of copied) emitSteps(dl, id, dl.plan.steps.store);
  notify(dl);
}

/** Reports a message the consumer found consumed before. */
export function emitDuplicate(rt: SettleContext, m: StoredMessage): void {
  rt.events.emit('duplicate', { id: m.id, topic: rt.name, by: 'consumer', at: rt.clock.now() });
}

/** A handler outlived its lease: visible by default, since it means leaseMs is too short for the handler. */
export function leaseLost(rt: SettleContext, error: LeaseLostError): void {
  rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
  rt.logger.warn(error.message, { topic: rt.name });
}

/** Takes messages along `steps` (a plan's path that ends their life) as one compare-and-set. */
export async function settle(rt: SettleContext, items: StoredMessage[], steps: readonly TransitionStep[], tx?: unknown): Promise<string[]> {
  if (items.length === 0) return [];
  const won = await rt.storage.settle(requests.settle(rt, steps, items, rt.clock.now()), tx);
  if (tx !== undefined) return won;
  for (const id of won) emitSteps(rt, id, steps);
  // A lease that lost its compare-and-set means the message went to another consumer; a consumed row deleted by
  // someone else (another consumer's first sweep) is done, not lost.
  if (steps[0]!.from === rt.plan.leased && won.length < items.length) {
    const settled = new Set(won);
    for (const m of items) if (!settled.has(m.id)) leaseLost(rt, new LeaseLostError(rt.name, m.id));
  }
  return won;
}

/** Failed deliveries, in one release per target: back to ready after a backoff, or dead once the machine says so. */
export async function nack(rt: SettleContext, failed: ReadonlyArray<readonly [StoredMessage, unknown]>): Promise<void> {
  if (failed.length === 0) return;
  const now = rt.clock.now();
  const failures: Failure[] = failed.map(([m, error]) => {
    rt.events.emit('handlerError', { id: m.id, topic: rt.name, deliveries: m.deliveries, error, at: now });
    return { message: m, availableAt: now + backoffDelay(rt.options.backoff, m.deliveries), error: describeError(error) };
  });
  const { retried, dead, copied } = await releaseLeases(rt.storage, rt, failures, now);
  // What each message became, as storage moved it: its state tells a retry from a death.
  const moved = new Map([...retried, ...dead].map((m) => [m.id, m]));
  const died = new Set(dead);
  for (const [i, f] of failures.entries()) {
    const m = f.message;
    const where = { topic: rt.name, id: m.id, attempt: m.deliveries, error: firstLine(f.error ?? '') };
    const after = moved.get(m.id);
    if (after && !died.has(after)) {
      rt.logger.warn(`handler failed; redelivering in ${f.availableAt - now} ms`, where);
      emitSteps(rt, m.id, [{ from: rt.plan.leased, event: 'NACK', to: after.state }]);
    } else if (after) {
      rt.logger.error(`handler failed ${m.deliveries} time(s); message dead-lettered${rt.deadLetter ? ` to ${rt.deadLetter.name}` : ''}`, where);
      emitDead(rt, after, now, failed[i]![1]);
    } else {
      // Its lease expired (another delivery has it) or its consumption committed after all (a lost commit ack).
      rt.logger.warn('delivery failed, but the message had already left its lease; nothing to redeliver', where);
    }
  }
  emitCopies(rt, copied);
}

/**
 * Settles handled batches in the background: one batch's acks in one compare-and-set and its nacks in one release
 * per target, one batch after another, so settling overlaps the next lease and handlers while keeping order.
 */
export class Settler {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly rt: SettleContext,
    /** Whether the consumer stopped waiting: outcomes that come in after that are not settled. */
    private readonly abandoned: () => boolean,
  ) {}

  /** Queues a batch's outcomes: `acked` along `steps`, `failed` nacked. */
  enqueue(acked: StoredMessage[], steps: readonly TransitionStep[], failed: Array<[StoredMessage, unknown]>): void {
    const { rt } = this;
    this.tail = this.tail.then(async () => {
      if (this.abandoned()) return;
      try {
        await settle(rt, acked, steps);
        await nack(rt, failed);
      } catch (error) {
        // Unsettled leases expire and the messages are redelivered: at-least-once still holds.
        rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
        rt.logger.error('settling a batch failed; its messages will be redelivered when their leases expire', { topic: rt.name, error: String(error) });
      }
    });
  }

  /** Resolves once everything queued so far is settled. */
  settled(): Promise<void> {
    return this.tail;
  }
}

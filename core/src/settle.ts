import { LeaseLostError } from './errors.js';
import { backoffDelay } from './options.js';
import { describeError, firstLine } from './runtime.js';
import type { StoredMessage } from './storage.js';
import type { TransitionStep } from './table.js';
import { emitSteps, type TopicRuntime } from './topic-runtime.js';

/** Emits a message's DEAD transition and the `deadLetter` event. */
export function emitDead(rt: TopicRuntime, id: string, deliveries: number, at: number, error?: unknown): void {
  const { plan } = rt;
  const to = plan.table.next(plan.leased, { type: 'DEAD', deliveries, maxDeliveries: rt.options.maxDeliveries });
  emitSteps(rt, id, [{ from: plan.leased, event: 'DEAD', to }]);
  rt.events.emit('deadLetter', { id, topic: rt.name, deadLetter: rt.deadLetter?.topic, deliveries, at, error });
}

/** Reports a message the consumer found consumed before. */
export function emitDuplicate(rt: TopicRuntime, m: StoredMessage): void {
  rt.events.emit('duplicate', { id: m.id, topic: rt.name, by: 'consumer', at: rt.clock.now() });
}

/** Takes messages along `steps` (a plan's path that ends their life) as one compare-and-set. */
export async function settle(rt: TopicRuntime, items: StoredMessage[], steps: readonly TransitionStep[]): Promise<void> {
  if (items.length === 0) return;
  const from = steps[0]!.from;
  const fromLease = from === rt.plan.leased;
  const won = await rt.storage.settle({
    topic: rt.name,
    from,
    to: steps.at(-1)!.to,
    // Only a leased message holds a lease: a consumed one's token must not take part in the compare-and-set.
    items: fromLease ? items : items.map((m) => ({ id: m.id })),
    remove: true,
    now: rt.clock.now(),
  });
  for (const id of won) emitSteps(rt, id, steps);
  // A consumed row deleted by someone else (another consumer's first sweep) is done, not lost; a lease that lost its
  // compare-and-set means the message went to another consumer.
  if (fromLease && won.length < items.length) {
    const settled = new Set(won);
    for (const m of items) if (!settled.has(m.id)) leaseLost(rt, new LeaseLostError(rt.name, m.id));
  }
}

/** A handler outlived its lease: visible by default, since it means leaseMs is too short for the handler. */
export function leaseLost(rt: TopicRuntime, error: LeaseLostError): void {
rt.events.emit('error', { topic: rt.name, error, at: rt.clock.now() });
rt.logger.warn(error.message, { topic: rt.name });
}

/** Back to ready after a backoff, or dead once the machine's guard says deliveries are used up. */
export async function nack(rt: TopicRuntime, failed: Array<[StoredMessage, unknown]>): Promise<void> {
  const now = rt.clock.now();
  for (const [m, error] of failed) {
    rt.events.emit('handlerError', { id: m.id, topic: rt.name, deliveries: m.deliveries, error, at: now });
    const facts = { deliveries: m.deliveries, maxDeliveries: rt.options.maxDeliveries };
    const { plan } = rt;
    const retryTo = plan.table.tryNext(plan.leased, { type: 'NACK', ...facts });
    const to = retryTo ?? plan.table.next(plan.leased, { type: 'DEAD', ...facts });
    const delayMs = backoffDelay(rt.options.backoff, m.deliveries);
    const reason = describeError(error);
    const won = await rt.storage.release({
      topic: rt.name,
      from: plan.leased,
      to,
      items: [{ id: m.id, leaseToken: m.leaseToken, availableAt: now + delayMs, error: reason }],
      now,
      deadLetter: retryTo ? undefined : rt.deadLetter,
    });
    const where = { topic: rt.name, id: m.id, attempt: m.deliveries, error: firstLine(reason) };
    if (won.length === 0) {
      // Its lease expired (another delivery has it) or its consumption committed after all (a lost commit ack).
      rt.logger.warn('delivery failed, but the message had already left its lease; nothing to redeliver', where);
      continue;
    }
    if (retryTo) {
      rt.logger.warn(`handler failed; redelivering in ${delayMs} ms`, where);
      emitSteps(rt, m.id, [{ from: plan.leased, event: 'NACK', to }]);
    } else {
      rt.logger.error(`handler failed ${m.deliveries} time(s); message dead-lettered${rt.deadLetter ? ` to ${rt.deadLetter.topic}` : ''}`, where);
      emitDead(rt, m.id, m.deliveries, now, error);
    }
  }
}

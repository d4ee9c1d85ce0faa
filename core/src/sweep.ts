import { emitDead, settle } from './settle.js';
import { emitSteps, notify, type TopicRuntime } from './topic-runtime.js';

/** Requeues or dead-letters a topic's expired leases, at most every quarter lease (and at least every second). */
export class LeaseSweeper {
  private lastSweep = -Infinity;
  private leftoversFinished = false;

  constructor(private readonly rt: TopicRuntime) {}

  /** Requeues or dead-letters expired leases, and, once, finishes the consumed rows an older version left. */
  async sweep(): Promise<void> {
    const { rt } = this;
    const now = rt.clock.now();
    const { plan } = rt;
    // A lifecycle whose leases never come back (the lease deleted the message) has nothing to sweep.
    if (plan.retry === undefined || plan.dead === undefined || now - this.lastSweep < Math.min(rt.options.leaseMs / 4, 1000)) return;
    this.lastSweep = now;
    const result = await rt.storage.expire({
      topic: rt.name,
      from: plan.leased,
      ready: plan.retry,
      dead: plan.dead,
      maxDeliveries: rt.options.maxDeliveries,
      now,
      deadLetter: rt.deadLetter,
    });
    for (const r of result.requeued) {
      const to = plan.table.next(plan.leased, { type: 'EXPIRE', deliveries: r.deliveries, maxDeliveries: rt.options.maxDeliveries });
      emitSteps(rt, r.id, [{ from: plan.leased, event: 'EXPIRE', to }]);
      rt.events.emit('leaseExpired', { id: r.id, topic: rt.name, deliveries: r.deliveries, at: now });
    }
    for (const r of result.dead) emitDead(rt, r.id, r.deliveries, now);
    if (result.requeued.length > 0) notify(rt);
    // The inbox consumes and deletes in one statement, but an older version did it in two, and a crash between
    // them left `consumed` rows: finished once, when the consumer starts.
    if (!this.leftoversFinished && plan.delivery === 'transactional-inbox' && plan.consumed) {
      this.leftoversFinished = true;
      const leftovers = await rt.storage.peek(rt.name, plan.consumed, 1000);
      if (leftovers.length > 0) await settle(rt, leftovers, plan.steps.delete);
    }
  }
}

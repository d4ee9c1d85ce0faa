import { expireLeases } from '../storage/requests.js';
import { emitCopies, emitDead, settle, type SettleContext } from './settler.js';
import { emitSteps, notify, type TopicRuntime } from './runtime.js';

/** What a sweep needs of its topic: settling's, and the consumers to wake for requeued messages. */
export type SweepContext = SettleContext & Pick<TopicRuntime, 'consumers'>;

/**
 * A topic's one sweeper in this process, shared by its consumers: requeues or dead-letters expired leases, at most
 * every quarter lease (and at least every second), one sweep at a time.
 */
export class LeaseSweeper {
  private lastSweep = -Infinity;
  private running?: Promise<void>;
  private leftoversFinished = false;

  constructor(private readonly rt: SweepContext) {}

  /** Sweeps if it is time and no sweep is running; resolves when this call's sweep (if any) is done. */
  sweep(): Promise<void> {
    const { rt } = this;
    const now = rt.clock.now();
    // A lifecycle whose leases never come back (the lease deleted the message) has nothing to sweep.
    if (this.running || rt.plan.retry === undefined || now - this.lastSweep < Math.min(rt.options.leaseMs / 4, 1000)) return Promise.resolve();
    this.lastSweep = now;
    this.running = this.run(now).finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(now: number): Promise<void> {
    const { rt } = this;
    const { plan } = rt;
    const { requeued, dead, copied } = await expireLeases(rt.storage, rt, now);
    for (const m of requeued) {
      emitSteps(rt, m.id, [{ from: plan.leased, event: 'EXPIRE', to: m.state }]);
      rt.events.emit('leaseExpired', { id: m.id, topic: rt.name, deliveries: m.deliveries, at: now });
    }
    for (const m of dead) emitDead(rt, m, now);
    emitCopies(rt, copied);
    if (requeued.length > 0) notify(rt);
    // The inbox consumes and deletes in one statement, but an older version did it in two, and a crash between
    // them left `consumed` rows: finished once, by the first sweep.
    if (!this.leftoversFinished && plan.delivery === 'transactional-inbox' && plan.consumed) {
      this.leftoversFinished = true;
      const leftovers = await rt.storage.peek(rt.name, plan.consumed, 1000);
      await settle(rt, leftovers, plan.steps.delete);
    }
  }
}

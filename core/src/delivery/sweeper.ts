import type { LifecyclePlan } from '../lifecycle/plan.js';
import type { Clock } from '../services.js';
import type { SubscriptionLedger } from './ledger.js';

/** What a sweep needs of its subscription. */
export interface SweepContext {
  readonly topic: { readonly plan: LifecyclePlan; readonly clock: Clock };
  readonly options: { readonly leaseMs: number };
  readonly ledger: SubscriptionLedger;
}

/**
 * A subscription's one sweeper in this process, shared by its consumers: requeues or dead-letters expired leases
 * through the ledger, at most every quarter lease (and at least every second), one sweep at a time.
 */
export class LeaseSweeper {
  private lastSweep = -Infinity;
  private running?: Promise<void>;
  private leftoversFinished = false;

  constructor(private readonly s: SweepContext) {}

  /** Sweeps if it is time and no sweep is running; resolves when this call's sweep (if any) is done. */
  sweep(): Promise<void> {
    const { plan, clock } = this.s.topic;
    const now = clock.now();
    // A lifecycle whose leases never come back (the lease deleted the message) has nothing to sweep.
    if (this.running || plan.retry === undefined || now - this.lastSweep < Math.min(this.s.options.leaseMs / 4, 1000)) return Promise.resolve();
    this.lastSweep = now;
    this.running = this.run().finally(() => (this.running = undefined));
    return this.running;
  }

  private async run(): Promise<void> {
    const { ledger } = this.s;
    const { plan } = this.s.topic;
    await ledger.expire();
    // The inbox consumes and deletes in one statement, but an older version did it in two, and a crash between
    // them left `consumed` rows: finished once, by the first sweep.
    if (!this.leftoversFinished && plan.delivery === 'transactional-inbox' && plan.consumed) {
      this.leftoversFinished = true;
      const leftovers = await ledger.peek(plan.consumed, 1000);
      await ledger.settle(leftovers, plan.steps.delete);
    }
  }
}

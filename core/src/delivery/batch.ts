import { TidingsError } from '../errors.js';
import type { DeliveryStrategy } from '../lifecycle/plan.js';
import { describeError, firstLine } from '../services.js';
import type { StoredMessage } from '../storage/contract.js';
import type { Delivery } from './context.js';
import type { SubscriptionRuntime } from './runtime.js';
import { CommitBehind } from './commit-behind.js';
import { leaseLost, type Settler, type SettleContext } from './settler.js';

/** The messages a batch handler marked failed, with why. */
export type Failures = Map<StoredMessage, unknown>;

/** What a batch delivery needs of its consumer. */
export interface BatchDeliveryContext<Tx> {
  readonly s: SettleContext & Pick<SubscriptionRuntime, 'scope'>;
  readonly settler: Settler;
  /** Runs the batch handler (inside `tx` when the consumption commits in one); resolves to the messages it marked failed. */
  handle(batch: StoredMessage[], tx: Tx | undefined): Promise<Failures>;
  /** Whether the consumer stopped waiting for its handlers (see `StopOptions`). */
  abandoned(): boolean;
  /** Aborted when the consumer stops waiting for its handlers: a transaction must not wait for one any longer. */
  readonly abandonSignal: AbortSignal;
}

/** Rolls back a batch's transaction whose handler is still running when its consumer gives up on it. */
class Abandoned extends TidingsError {
  constructor() {
    super('ABANDONED', 'the consumer stopped before this batch handler finished; its messages will be redelivered after their leases expire');
  }
}

/** Runs the handler; a throw fails every message of the batch with its error. */
async function outcome<Tx>(c: BatchDeliveryContext<Tx>, batch: StoredMessage[], tx?: Tx): Promise<Failures> {
  try {
    return await c.handle(batch, tx);
  } catch (error) {
    return new Map(batch.map((m) => [m, error]));
  }
}

/** At-most-once: the lease deleted the batch already; what failed is gone, visibly. */
function removeOnLease<Tx>(c: BatchDeliveryContext<Tx>): Delivery {
  const { s } = c;
  return {
    async process(batch) {
      const failed = await outcome(c, batch);
      for (const [m, error] of failed) {
        s.topic.events.emit('handlerError', { id: m.id, topic: s.topic.name, subscription: s.name, deliveries: m.deliveries, error, at: s.topic.clock.now() });
        s.topic.logger.warn('batch handler failed a message; at-most-once never redelivers, it is gone', {
          topic: s.topic.name,
          subscription: s.name,
          id: m.id,
          error: firstLine(describeError(error)),
        });
      }
      for (const m of batch) if (!failed.has(m)) s.ledger.emit(m.id, s.topic.plan.steps.handled);
    },
  };
}

/** At-least-once: the handler runs, then the batch's acks and nacks are settled in the background. */
function ackAfterHandler<Tx>(c: BatchDeliveryContext<Tx>): Delivery {
  return {
    async process(batch) {
      const failed = await outcome(c, batch);
      c.settler.enqueue(
        batch.filter((m) => !failed.has(m)),
        c.s.topic.plan.steps.handled,
        [...failed],
      );
    },
  };
}

/** A transaction rolled back because some of its messages are not this delivery's to consume any more. */
class Excluded extends TidingsError {
  constructor(readonly out: ReadonlySet<StoredMessage>) {
    super('ROLLBACK', 'a message of the batch left its lease, or was consumed elsewhere, before the commit');
  }
}

/**
 * Exactly-once: ids consumed before are settled as duplicates; the rest go to the handler in one transaction with
 * their consumption (one compare-and-set) and their idempotency record, those it marked failed left out and nacked
 * after the commit. A lease lost or an id consumed elsewhere meanwhile rolls the transaction back, and the handler
 * runs again without them: it may run twice, but only one run's writes ever commit. A throw nacks the whole batch.
 * The commit goes on one batch behind (`CommitBehind`) once the handler returned.
 */
function transactionalBatch<Tx>(c: BatchDeliveryContext<Tx>): Delivery {
  const { s } = c;
  const { topic } = s;
  const behind = new CommitBehind(c.settler);
  // A handler still running when the consumer gives up on it no longer holds the transaction open: it rolls back.
  const abandonment = new Promise<never>((_, reject) => c.abandonSignal.addEventListener('abort', () => reject(new Abandoned()), { once: true }));
  abandonment.catch(() => undefined);
  const consume = async (batch: StoredMessage[], handled: () => void): Promise<void> => {
    const seen = await topic.idempotency.seen(
      s.scope,
      batch.map((m) => m.id),
    );
    const duplicates = batch.filter((m) => seen.has(m.id));
    for (const m of duplicates) s.ledger.duplicate(m);
    let group = batch.filter((m) => !seen.has(m.id));
    let failed: Failures = new Map();
    while (group.length > 0) {
      const attempt = group;
      try {
        await topic.storage.transaction(async (tx) => {
          const run = c.handle(attempt, tx as Tx);
          run.catch(() => undefined);
          failed = await Promise.race([run, abandonment]);
          handled();
          const ok = attempt.filter((m) => !failed.has(m));
          const won = new Set(await s.ledger.settle(ok, topic.plan.steps.handled, tx));
          const lost = ok.filter((m) => !won.has(m.id));
          for (const m of lost) leaseLost(s, m);
          if (lost.length > 0) throw new Excluded(new Set(lost));
          const recorded = new Set(
            await topic.idempotency.record(
              s.scope,
              ok.map((m) => m.id),
              topic.clock.now() + s.options.idempotencyWindowMs,
              tx,
            ),
          );
          const elsewhere = ok.filter((m) => !recorded.has(m.id));
          if (elsewhere.length > 0) {
            duplicates.push(...elsewhere);
            throw new Excluded(new Set(elsewhere));
          }
        });
      } catch (error) {
        if (c.abandoned()) return;
        if (error instanceof Excluded) {
          group = group.filter((m) => !error.out.has(m));
          continue;
        }
        // The handler threw, or the transaction failed: nothing committed, so every message goes back.
        failed = new Map(attempt.map((m) => [m, error]));
        group = [];
        break;
      }
      s.ledger.settled(
        attempt,
        attempt.filter((m) => !failed.has(m)).map((m) => m.id),
        topic.plan.steps.handled,
      );
      break;
    }
    if (c.abandoned()) return;
    // Consumed elsewhere: this copy is deleted as the duplicate it is; failures are nacked.
    c.settler.enqueue(duplicates, topic.plan.steps.handled, [...failed]);
  };
  return { process: (batch) => behind.run((handled) => consume(batch, handled)) };
}

const strategies: Record<DeliveryStrategy, <Tx>(c: BatchDeliveryContext<Tx>) => Delivery> = {
  'remove-on-lease': removeOnLease,
  'ack-after-handler': ackAfterHandler,
  'transactional-inbox': transactionalBatch,
};

/** The batch delivery the topic's plan names. */
export function batchDeliveryFor<Tx>(c: BatchDeliveryContext<Tx>): Delivery {
  return strategies[c.s.topic.plan.delivery](c);
}

import { runAll, type Delivery, type DeliveryContext } from './context.js';
import { TidingsError } from '../errors.js';
import { describeError, firstLine } from '../services.js';
import type { StoredMessage } from '../storage/contract.js';
import { CommitBehind, countdown } from './commit-behind.js';
import { leaseLost } from './settler.js';

type Failed = Array<[StoredMessage, unknown]>;

/** Rolls back a group whose compare-and-set or id record found messages that are not this delivery's to consume. */
class Rollback extends TidingsError {
  constructor(
    message: string,
    /** Leases that expired: another delivery has these messages. */
    readonly leaseLost: readonly StoredMessage[] = [],
    /** Consumed and deleted already (a commit whose answer was lost finished them). */
    readonly consumed: readonly StoredMessage[] = [],
    /** Ids another delivery recorded as consumed meanwhile. */
    readonly elsewhere: readonly StoredMessage[] = [],
  ) {
    super('ROLLBACK', message);
  }

  get excluded(): ReadonlySet<StoredMessage> {
    return new Set([...this.leaseLost, ...this.consumed, ...this.elsewhere]);
  }
}

/** Rolls back a handler's transaction that finished after its consumer gave up waiting for it. */
class Abandoned extends TidingsError {
  constructor() {
    super('ABANDONED', 'the consumer stopped before this handler finished; its message will be redelivered after its lease expires');
  }
}

/** Handlers threw inside a group's transaction; says which messages, so only those are nacked. */
class HandlersFailed extends TidingsError {
  constructor(readonly failures: Failed) {
    super('HANDLER_FAILED', `handler failed for message ${failures.map(([m]) => m.id).join(', ')}`, { cause: failures[0]?.[1] });
  }
}

/** Exactly-once delivery: a leased batch consumed through the transactional inbox. */
export class TransactionalInbox<Tx> implements Delivery {
  /** Rejects once the consumer abandons its handlers, so their transactions roll back instead of holding a connection. */
  private readonly abandonment: Promise<never>;
  /** Each batch commits while the next one is leased and handled. */
  private readonly behind: CommitBehind;

  constructor(private readonly c: DeliveryContext<Tx>) {
    this.behind = new CommitBehind(c.settler);
    this.abandonment = new Promise<never>((_, reject) => c.abandonSignal.addEventListener('abort', () => reject(new Abandoned()), { once: true }));
    this.abandonment.catch(() => undefined);
  }

  /**
   * Exactly-once, the transactional inbox: ids consumed before are looked up first; then, in one transaction for the
   * whole batch, the handlers of the new ones run (up to `concurrency` at once), all are consumed and deleted in one
   * compare-and-set, and the new ids are recorded (which refuses an id consumed meanwhile): one commit per batch,
   * whatever the concurrency. Where the storage cannot share a transaction among handlers (an adapter
   * without `branch`), the batch is split into `concurrency` groups, each one transaction. The look-up stays outside the
   * transaction: on SQLite a read there would pin a snapshot for the handlers' whole run, and a commit by another
   * process meanwhile would fail its write.
   * Once every handler returned, `process` resolves and the batch commits one batch behind (`CommitBehind`).
   * If a handler throws, the transaction rolls back, that message is nacked, and the rest run again as one group; a
   * handler may so run twice, but only one run's writes ever commit. Such a rerun, and the one-by-one retry after a
   * failed commit, may overlap the next batch's handlers.
   */
  async process(batch: StoredMessage[]): Promise<void> {
    const size = this.c.s.topic.storage.branch ? batch.length : Math.max(1, Math.ceil(batch.length / this.c.concurrency));
    const groups = Array.from({ length: Math.ceil(batch.length / size) }, (_, i) => batch.slice(i * size, (i + 1) * size));
    await this.behind.run((handled) => this.consumeBatch(groups, countdown(groups.length, handled)));
  }

  /** Every group of a batch in its transaction; `handled[i]` is called once group i's handlers have all returned. */
  private async consumeBatch(groups: StoredMessage[][], handled: Array<() => void>): Promise<void> {
    const failed: Failed = [];
    const consumedElsewhere: StoredMessage[] = [];
    const { s } = this.c;
    const seen = await s.topic.idempotency.seen(
      s.scope,
      groups.flatMap((g) => g.map((m) => m.id)),
    );
    await Promise.all(groups.map((group, i) => this.consumeGroup(group, seen, failed, consumedElsewhere, handled[i]!).finally(handled[i]!)));
    // Abandoned at stop: what committed is done; the rest waits for its leases to expire.
    if (this.c.abandoned()) return;
    for (const m of consumedElsewhere) s.ledger.duplicate(m);
    this.c.settler.enqueue(consumedElsewhere, s.topic.plan.steps.handled, failed);
  }

  /**
   * One group in one transaction. What failed is taken out and the rest tried again as a group: a failing handler's
   * message is nacked (when several fail at once, each is tried alone, since on PostgreSQL one failed statement fails
   * its neighbours too); a lost lease is reported; an id consumed meanwhile is deleted as a duplicate. When the
   * transaction itself fails (or its commit's answer is lost), each message is tried in a transaction of its own.
   */
  private async consumeGroup(
    group: StoredMessage[],
    seen: Set<string>,
    failed: Failed,
    consumedElsewhere: StoredMessage[],
    handled: () => void,
  ): Promise<void> {
    if (group.length === 0) return;
    const { s } = this.c;
    const { topic } = s;
    try {
      await topic.storage.transaction((tx) => this.consume(group, seen, tx as Tx, handled));
    } catch (error) {
      if (this.c.abandoned()) return;
      if (error instanceof HandlersFailed) {
        if (group.length === 1 || error.failures.length === 1) failed.push(...error.failures);
        else for (const [m] of error.failures) await this.consumeGroup([m], seen, failed, consumedElsewhere, handled);
        const out = new Set(error.failures.map(([m]) => m));
        return this.consumeGroup(
          group.filter((m) => !out.has(m)),
          seen,
          failed,
          consumedElsewhere,
          handled,
        );
      }
      if (error instanceof Rollback) {
        for (const m of error.leaseLost) leaseLost(s, m);
        for (const m of error.consumed) s.ledger.duplicate(m);
        consumedElsewhere.push(...error.elsewhere);
        const out = error.excluded;
        return this.consumeGroup(
          group.filter((m) => !out.has(m)),
          seen,
          failed,
          consumedElsewhere,
          handled,
        );
      }
      if (group.length === 1) return void failed.push([group[0]!, error]);
      // The transaction itself failed, or its commit's answer was lost: say so, then ask again which ids were
      // recorded (all may have been) and try each message on its own.
      topic.logger.warn(`a group's transaction failed; its ${group.length} messages are tried one by one`, {
        topic: topic.name,
        subscription: s.name,
        error: firstLine(describeError(error)),
      });
      const seenNow = await topic.idempotency.seen(
        s.scope,
        group.map((m) => m.id),
      );
      for (const m of group) await this.consumeGroup([m], seenNow, failed, consumedElsewhere, handled);
      return;
    }
    this.emitConsumed(group, seen);
  }

  /**
   * Inside the transaction: the handlers of the ids not `seen` before, consume-and-delete as one compare-and-set,
   * then the record of the new ids. The record comes last so that a store without isolation (memory) never shows
   * it before the compare-and-set passed.
   */
  private async consume(group: StoredMessage[], seen: Set<string>, tx: Tx, handled: () => void): Promise<void> {
    const { s } = this.c;
    const fresh = group.filter((m) => !seen.has(m.id));
    const failures: Failed = [];
    const { storage, idempotency, plan, clock } = s.topic;
    const shared = storage.branch !== undefined && fresh.length > 1;
    await runAll(fresh, storage.branch ? this.c.concurrency : 1, async (m) => {
      // After a failure the transaction will roll back: no point starting more handlers in it.
      if (failures.length > 0) return;
      // Handlers running at once each get a handle of their own on the shared transaction (MikroORM: a fork), made
      // when the handler first reads `ctx.em`.
      const run = shared ? storage.branch!(tx, (own) => this.c.handle(m, own as () => Tx)) : this.c.handle(m, () => tx);
      run.catch(() => undefined);
      // A handler still running when the consumer gives up on it no longer holds its transaction open: the transaction
      // rolls back now (closing storage would otherwise wait for it), and what the handler does later is discarded.
      try {
        await Promise.race([run, this.abandonment]);
      } catch (error) {
        if (error instanceof Abandoned) throw error;
        failures.push([m, error]);
      }
    });
    if (this.c.abandoned()) throw new Abandoned();
    if (failures.length > 0) throw new HandlersFailed(failures);
    handled();
    const won = await s.ledger.settle(group, plan.steps.handled, tx);
    if (won.length < group.length) {
      // Gone although its id was consumed before: a commit whose answer was lost finished it. Otherwise its lease
      // expired and another delivery has it. Either way: roll back, handler writes included.
      const settled = new Set(won);
      const lost = group.filter((m) => !settled.has(m.id));
      throw new Rollback(
        'a lease in the group was lost',
        lost.filter((m) => !seen.has(m.id)),
        lost.filter((m) => seen.has(m.id)),
      );
    }
    if (fresh.length > 0) {
      const recorded = new Set(
        await idempotency.record(
          s.scope,
          fresh.map((m) => m.id),
          clock.now() + s.options.idempotencyWindowMs,
          tx,
        ),
      );
      if (recorded.size < fresh.length)
        throw new Rollback(
          'an id in the group was consumed elsewhere meanwhile',
          [],
          [],
          fresh.filter((m) => !recorded.has(m.id)),
        );
    }
  }

  /** After the commit: each message consumed and deleted, and a duplicate also reported as one. */
  private emitConsumed(group: StoredMessage[], duplicates: ReadonlySet<string>): void {
    const { ledger, topic } = this.c.s;
    for (const m of group) if (duplicates.has(m.id)) ledger.duplicate(m);
    ledger.settled(
      group,
      group.map((m) => m.id),
      topic.plan.steps.handled,
    );
  }
}

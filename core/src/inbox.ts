import type { Delivery, DeliveryContext } from './delivery-context.js';
import { LeaseLostError, TidingsError } from './errors.js';
import { describeError, firstLine } from './runtime.js';
import type { StoredMessage } from './storage.js';
import { emitDuplicate, leaseLost, settle } from './settler.js';
import { emitSteps } from './topic-runtime.js';

class Rollback extends TidingsError {}

/** Rolls back a handler's transaction that finished after its consumer gave up waiting for it. */
class Abandoned extends TidingsError {
  constructor() {
    super('ABANDONED', 'the consumer stopped before this handler finished; its message will be redelivered after its lease expires');
  }
}

/** A handler threw inside a group's transaction; says which message, so only that one is nacked. */
class GroupHandlerError extends TidingsError {
  constructor(
    readonly message_: StoredMessage,
    cause: unknown,
  ) {
    super('HANDLER_FAILED', `handler failed for message ${message_.id}`, { cause });
  }
}

/** Exactly-once delivery: a leased batch consumed through the transactional inbox. */
export class TransactionalInbox<Tx> implements Delivery {
  /** Rejects once the consumer abandons its handlers, so their transactions roll back instead of holding a connection. */
  private readonly abandonment: Promise<never>;

  constructor(private readonly c: DeliveryContext<Tx>) {
    this.abandonment = new Promise<never>((_, reject) => c.abandonSignal.addEventListener('abort', () => reject(new Abandoned()), { once: true }));
    this.abandonment.catch(() => undefined);
  }

  /**
   * Exactly-once, the transactional inbox: ids consumed before are looked up first; then, in one transaction, the
   * handler of each new one runs, all are consumed and deleted in one compare-and-set, and the new ids are recorded
   * (which refuses an id consumed meanwhile). The look-up stays outside the transaction: on SQLite a read there
   * would pin a snapshot for the handler's whole run, and a commit by another process meanwhile would fail its write.
   * Messages are split into `concurrency` groups, each one transaction (one commit for many); if a handler in a group
   * throws, the group rolls back and each of its messages gets a transaction of its own, so only the failing one is
   * nacked. A handler may then run twice, but only one run's writes ever commit.
   */
  async process(batch: StoredMessage[]): Promise<void> {
    const failed: Array<[StoredMessage, unknown]> = [];
    const consumedElsewhere: StoredMessage[] = [];
    const seen = await this.c.rt.idempotency.seen(this.c.rt.name, batch.map((m) => m.id));
    const size = Math.max(1, Math.ceil(batch.length / this.c.concurrency));
    const groups = Array.from({ length: Math.ceil(batch.length / size) }, (_, i) => batch.slice(i * size, (i + 1) * size));
    await Promise.all(
      groups.map(async (group) => {
        if (group.length === 1) return this.consumeAlone(group[0]!, seen, failed, consumedElsewhere);
        try {
          await this.consumeGroup(group, seen);
        } catch (error) {
          // The failing message is nacked as it is; only its group mates run again, each on its own.
          if (this.c.abandoned()) return;
          const failing = error instanceof GroupHandlerError ? error.message_ : undefined;
          if (failing) failed.push([failing, (error as GroupHandlerError).cause]);
          else if (!(error instanceof Rollback)) {
            // Not a handler's error: the transaction itself failed (or its commit's answer was lost), so say so.
            this.c.rt.logger.warn(`a group's transaction failed; its ${group.length} messages are tried one by one`, { topic: this.c.rt.name, error: firstLine(describeError(error)) });
          }
          // After a failed commit, ask again: its answer may have been lost after all its ids were recorded.
          const seenNow = failing ? seen : await this.c.rt.idempotency.seen(this.c.rt.name, group.map((m) => m.id));
          for (const m of group) if (m !== failing) await this.consumeAlone(m, seenNow, failed, consumedElsewhere);
        }
      }),
    );
    // Abandoned at stop: what committed is done; the rest waits for its leases to expire.
    if (this.c.abandoned()) return;
    for (const m of consumedElsewhere) emitDuplicate(this.c.rt, m);
    this.c.settler.enqueue(consumedElsewhere, this.c.rt.plan.steps.handled, failed);
  }

  /** One group's transaction; throws `GroupHandlerError` naming a failing handler's message, or `Rollback`. */
  private async consumeGroup(group: StoredMessage[], seen: Set<string>): Promise<void> {
    await this.c.rt.storage.transaction((tx) => this.consume(group, seen, tx as Tx));
    this.emitConsumed(group, seen);
  }

  /**
   * One message in its own transaction: a failure is nacked, a lost lease logged, an id another delivery recorded
   * meanwhile deleted as a duplicate, and one already consumed and gone (its commit's answer was lost) only reported.
   */
  private async consumeAlone(m: StoredMessage, seen: Set<string>, failed: Array<[StoredMessage, unknown]>, consumedElsewhere: StoredMessage[]): Promise<void> {
    try {
      await this.c.rt.storage.transaction((tx) => this.consume([m], seen, tx as Tx));
      this.emitConsumed([m], seen);
    } catch (error) {
      if (this.c.abandoned()) return;
      if (error instanceof Rollback && error.code === 'DUPLICATE') consumedElsewhere.push(m);
      else if (error instanceof Rollback && error.code === 'CONSUMED') emitDuplicate(this.c.rt, m);
      else if (error instanceof Rollback) leaseLost(this.c.rt, new LeaseLostError(this.c.rt.name, m.id));
      else failed.push([m, error instanceof GroupHandlerError ? error.cause : error]);
    }
  }

  /**
   * Inside the transaction: the handlers of the ids not `seen` before, consume-and-delete as one compare-and-set,
   * then the record of the new ids. The record comes last so that a store without isolation (memory) never shows
   * it before the compare-and-set passed.
   */
  private async consume(group: StoredMessage[], seen: Set<string>, tx: Tx): Promise<void> {
    const { rt } = this.c;
    for (const m of group) {
      if (seen.has(m.id)) continue;
      // A handler still running when the consumer gives up on it no longer holds its transaction open: the transaction
      // rolls back now (closing storage would otherwise wait for it), and what the handler does later is discarded.
      const run = this.c.handle(m, tx);
      run.catch(() => undefined);
      try {
        await Promise.race([run, this.abandonment]);
      } catch (error) {
        if (error instanceof Abandoned) throw error;
        throw new GroupHandlerError(m, error);
      }
    }
    if (this.c.abandoned()) throw new Abandoned();
    const won = await settle(rt, group, rt.plan.steps.handled, tx);
    if (won.length < group.length) {
      // Gone although its id was consumed before: a commit whose answer was lost finished it. Otherwise its lease
      // expired and another delivery has it. Either way: roll back, handler writes included.
      const settled = new Set(won);
      const lost = group.filter((m) => !settled.has(m.id));
      throw lost.every((m) => seen.has(m.id)) ? new Rollback('CONSUMED', 'consumed and deleted already') : new Rollback('LEASE_LOST', 'a lease in the group was lost');
    }
    const fresh = group.filter((m) => !seen.has(m.id)).map((m) => m.id);
    if (fresh.length > 0) {
      const recorded = await rt.idempotency.record(rt.name, fresh, rt.clock.now() + rt.options.idempotencyWindowMs, tx);
      if (recorded.length < fresh.length) throw new Rollback('DUPLICATE', 'an id in the group was consumed elsewhere meanwhile');
    }
  }

  /** After the commit: each message consumed and deleted, and a duplicate also reported as one. */
  private emitConsumed(group: StoredMessage[], duplicates: ReadonlySet<string>): void {
    for (const m of group) {
      if (duplicates.has(m.id)) emitDuplicate(this.c.rt, m);
      emitSteps(this.c.rt, m.id, this.c.rt.plan.steps.handled);
    }
  }
}

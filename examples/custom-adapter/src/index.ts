import { AsyncLocalStorage } from 'node:async_hooks';
import Database from 'better-sqlite3';
import { ClosedError, StorageError, TidingsError, type MessageState } from '@tidings/core';
import type {
  ExpireRequest,
  ExtendLeaseRequest,
  IdempotencyStore,
  LeaseRequest,
  PeekRequest,
  PurgeRequest,
  RedriveRequest,
  ReleaseRequest,
  SettleRequest,
  StorageAdapter,
  StoredMessage,
  StoreRequest,
  StoreResult,
  SubscriptionCounts,
  SubscriptionRecord,
  TopicRecord,
} from '@tidings/core/adapter';
import { toMessage, toSubscription, toTopic, type Row, type SubscriptionRow, type TopicRow } from './rows.js';
import { SCHEMA, SQL } from './sql.js';

/** Where `betterSqliteStorage` keeps its data. */
export interface BetterSqliteOptions {
  /** The SQLite file. Each storage opened on it is a connection of its own: two of them are two brokers. */
  file: string;
  /** How long a statement keeps retrying while another connection holds the write lock (default 5 000 ms). */
  busyTimeoutMs?: number;
}

/** The handle `transaction(fn)` gives to `fn` and to handlers as `ctx.em`: write your own tables through `db` to commit with the message. */
export interface BetterSqliteTx {
  readonly db: Database.Database;
}

function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === 'string' && (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED'));
}

/** SQLite's errors become typed Tidings errors here, so callers switch on `code`, never on driver messages. */
function toStorageError(error: unknown, file: string): unknown {
  if (error instanceof TidingsError) return error;
  const detail = (error as Error)?.message ?? String(error);
  return isBusy(error)
    ? new StorageError(`${file} stayed locked by another connection (${detail}); retry, or raise busyTimeoutMs.`, { cause: error, code: 'STORAGE_BUSY' })
    : new StorageError(`${file}: ${detail}`, { cause: error });
}

/**
 * A Tidings storage adapter on one better-sqlite3 connection, written only against `@tidings/core` and `@tidings/core/adapter`.
 * Every method is one short SQLite transaction, and every state change a compare-and-set on one subscription's
 * copies, in the state Tidings says they are in; Tidings computes those states from its lifecycle machines.
 */
export class BetterSqliteStorage implements StorageAdapter<BetterSqliteTx> {
  readonly name = 'better-sqlite3';
  private db?: Database.Database;
  private readonly statements = new Map<string, Database.Statement>();
  private readonly busyTimeoutMs: number;
  /** The end of the queue of steps and transactions: one connection runs one transaction at a time. */
  private tail: Promise<unknown> = Promise.resolve();
  /** The transaction in progress, whose handle is the only way in while it runs. */
  private current?: BetterSqliteTx;
  /** Which transaction, if any, the calling code runs inside, to catch calls that forgot its handle. */
  private readonly insideOf = new AsyncLocalStorage<BetterSqliteTx>();
  private opening?: Promise<void>;
  private closing?: Promise<void>;

  constructor(private readonly options: BetterSqliteOptions) {
    this.busyTimeoutMs = options.busyTimeoutMs ?? 5_000;
  }

  open(): Promise<void> {
    this.opening ??= (async () => {
      if (this.closing) throw new ClosedError(`The better-sqlite3 storage on ${this.options.file}`);
      // No busy wait inside SQLite: it would block the event loop, and with it a transaction of this very
      // process (on another handle) that holds the lock. `retryWhileBusy` waits asynchronously instead.
      const db = await this.retryWhileBusy(() => new Database(this.options.file, { timeout: 0 }));
      try {
        await this.retryWhileBusy(() => {
          db.pragma('journal_mode = WAL'); // readers never wait for the writer
          db.pragma('synchronous = FULL'); // a store is on disk before it is acked, which at-least-once promises
          db.exec(SCHEMA); // IF NOT EXISTS: another handle on the file may have made the tables
        });
      } catch (error) {
        db.close();
        throw error;
      }
      this.db = db;
    })();
    return this.opening;
  }

  async store(req: StoreRequest, tx?: BetterSqliteTx): Promise<StoreResult[]> {
    return this.step(tx, () => {
      // Reading first and writing after is safe: a step holds SQLite's only write lock, so neither the registry nor
      // the dedup records change in between.
      const subscribed = this.rows(SQL.anySubscription, { topic: req.topic }).length > 0;
      const inBatch = new Set<string>();
      return req.messages.map((m) => {
        const first = !inBatch.has(m.id);
        inBatch.add(m.id);
        const params = { topic: req.topic, id: m.id, now: req.now };
        if (!first || this.rows(SQL.inWindow, params).length > 0) return { id: m.id, duplicate: true };
        const copies = this.changes(SQL.insertCopies, {
          ...params,
          key: m.key ?? null,
          body: m.body,
          state: req.state,
          availableAt: m.availableAt,
          lastError: m.lastError ?? null,
          headers: m.headers ?? null,
        });
        // No copy made: every subscription holds the id already (a duplicate), or there is none to hold it (kept nowhere).
        const duplicate = copies === 0 && subscribed;
        if (!duplicate && req.dedupUntil !== undefined) this.changes(SQL.recordDedup, { ...params, until: req.dedupUntil });
        return { id: m.id, duplicate };
      });
    });
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const sql = SQL.lease({ remove: req.remove, holdKeys: req.keyHeldIn !== undefined });
    const rows = await this.step(undefined, () =>
      this.rows(sql, {
        topic: req.topic,
        subscription: req.subscription,
        from: req.from,
        to: req.to,
        now: req.now,
        limit: req.limit,
        leaseUntil: req.leaseUntil,
        leaseToken: req.leaseToken,
        held: JSON.stringify(req.keyHeldIn ?? []),
      }),
    );
    // RETURNING has no order of its own: hand them back in store order.
    rows.sort((a, b) => a.seq - b.seq);
    const leased = rows.map(toMessage);
    // Rows deleted at hand-out are gone; answer with what the lease would have written.
    return req.remove
      ? leased.map((m) => ({ ...m, state: req.to, deliveries: m.deliveries + 1, leaseUntil: req.leaseUntil, leaseToken: req.leaseToken }))
      : leased;
  }

  async extendLease(req: ExtendLeaseRequest, tx?: BetterSqliteTx): Promise<boolean> {
    const changed = await this.step(tx, () =>
      this.changes(SQL.extendLease, {
        topic: req.topic,
        subscription: req.subscription,
        from: req.state,
        id: req.item.id,
        leaseToken: req.item.leaseToken ?? null,
        leaseUntil: req.leaseUntil,
      }),
    );
    return changed === 1;
  }

  async settle(req: SettleRequest, tx?: BetterSqliteTx): Promise<string[]> {
    const sql = req.remove ? SQL.settleRemove : SQL.settleMove;
    return this.step(tx, () =>
      req.items
        .filter(
          (item) =>
            this.changes(sql, {
              topic: req.topic,
              subscription: req.subscription,
              id: item.id,
              from: req.from,
              to: req.to,
              leaseToken: item.leaseToken ?? null,
            }) === 1,
        )
        .map((item) => item.id),
    );
  }

  async release(req: ReleaseRequest, tx?: BetterSqliteTx): Promise<string[]> {
    return this.step(tx, () =>
      req.items
        .filter(
          (item) =>
            this.changes(SQL.release, {
              topic: req.topic,
              subscription: req.subscription,
              id: item.id,
              from: req.from,
              to: req.to,
              leaseToken: item.leaseToken ?? null,
              availableAt: item.availableAt,
              error: item.error ?? null,
            }) === 1,
        )
        .map((item) => item.id),
    );
  }

  async expire(req: ExpireRequest, tx?: BetterSqliteTx): Promise<StoredMessage[]> {
    const { atLeast = null, below = null } = req.deliveries ?? {};
    const rows = await this.step(tx, () =>
      this.rows(SQL.expire, { topic: req.topic, subscription: req.subscription, from: req.from, to: req.to, now: req.now, atLeast, below }),
    );
    return rows.map(toMessage);
  }

  async redrive(req: RedriveRequest): Promise<string[]> {
    const params = {
      topic: req.topic,
      subscription: req.subscription,
      from: req.from,
      to: req.to,
      now: req.now,
      ids: req.ids ? JSON.stringify(req.ids) : null,
    };
    const rows = await this.step(undefined, () => this.rows<{ seq: number; id: string }>(SQL.redrive, params));
    return rows.sort((a, b) => a.seq - b.seq).map((r) => r.id);
  }

  async counts(topic?: string): Promise<SubscriptionCounts> {
    const rows = await this.step(undefined, () =>
      this.rows<{ topic: string; subscription: string; state: MessageState; n: number }>(SQL.counts, { topic: topic ?? null }),
    );
    const out: SubscriptionCounts = topic === undefined ? {} : { [topic]: {} };
    for (const r of rows) ((out[r.topic] ??= {})[r.subscription] ??= {})[r.state] = r.n;
    return out;
  }

  async peek(req: PeekRequest): Promise<StoredMessage[]> {
    const rows = await this.step(undefined, () =>
      this.rows(SQL.peek, { topic: req.topic, subscription: req.subscription, state: req.state, limit: req.limit }),
    );
    return rows.map(toMessage);
  }

  async declareTopic(topic: TopicRecord, tx?: BetterSqliteTx): Promise<TopicRecord> {
    const params = {
      name: topic.name,
      lifecycle: topic.lifecycle,
      ordering: topic.ordering ?? null,
      deadLetter: topic.deadLetter ?? null,
      maxDeliveries: topic.maxDeliveries,
      declaredAt: topic.declaredAt,
    };
    // The first declaration wins: a second one with another lifecycle or ordering reads the first, and Tidings refuses it.
    const [kept] = await this.step(tx, () => {
      this.changes(SQL.declareTopic, params);
      return this.rows<TopicRow>(SQL.topic, params);
    });
    return toTopic(kept!);
  }

  async topics(): Promise<TopicRecord[]> {
    return (await this.step(undefined, () => this.rows<TopicRow>(SQL.topics, {}))).map(toTopic);
  }

  async declareSubscription(subscription: SubscriptionRecord, tx?: BetterSqliteTx): Promise<SubscriptionRecord> {
    const params = {
      topic: subscription.topic,
      name: subscription.name,
      deadLetter: subscription.deadLetter ?? null,
      maxDeliveries: subscription.maxDeliveries,
      declaredAt: subscription.declaredAt,
    };
    const [kept] = await this.step(tx, () => {
      this.changes(SQL.declareSubscription, params);
      return this.rows<SubscriptionRow>(SQL.subscription, params);
    });
    return toSubscription(kept!);
  }

  async subscriptions(topic?: string): Promise<SubscriptionRecord[]> {
    return (await this.step(undefined, () => this.rows<SubscriptionRow>(SQL.subscriptions, { topic: topic ?? null }))).map(toSubscription);
  }

  async removeSubscription(topic: string, name: string): Promise<number> {
    // One step: no store can copy into the subscription between forgetting it and dropping its copies.
    return this.step(undefined, () => {
      this.changes(SQL.forgetSubscription, { topic, name });
      return this.changes(SQL.dropCopies, { topic, name });
    });
  }

  async purge(req: PurgeRequest): Promise<number> {
    const params = { topic: req.topic ?? null, now: req.now, before: req.before ?? null, states: JSON.stringify(req.states ?? []) };
    return this.step(undefined, () => this.changes(SQL.purgeDedup, params) + this.changes(SQL.purgeMessages, params));
  }

  /**
   * BEGIN IMMEDIATE … COMMIT around an async callback, which better-sqlite3's own `db.transaction` cannot wrap.
   * It holds the connection until it ends: other calls queue behind it, and calls with its handle run inside it.
   */
  transaction<T>(fn: (tx: BetterSqliteTx) => Promise<T>): Promise<T> {
    return this.enqueue(async () => {
      const db = this.connection;
      await this.retryWhileBusy(() => db.exec('BEGIN IMMEDIATE'));
      const tx: BetterSqliteTx = { db };
      this.current = tx;
      let result: T;
      try {
        result = await this.insideOf.run(tx, () => fn(tx));
      } catch (error) {
        // A failed statement may have ended the transaction already.
        if (db.inTransaction) db.exec('ROLLBACK');
        throw error;
      } finally {
        this.current = undefined;
      }
      try {
        db.exec('COMMIT');
      } catch (error) {
        if (db.inTransaction) db.exec('ROLLBACK');
        throw toStorageError(error, this.options.file);
      }
      return result;
    });
  }

  /** Consumed ids in the same database: recorded with a handler's `tx`, they commit or roll back with its writes. */
  private readonly idempotency: IdempotencyStore<BetterSqliteTx> = {
    name: 'better-sqlite3',
    seen: async (topic, ids, tx) => {
      const rows = await this.step(tx, () => this.rows<{ id: string }>(SQL.seen, { topic, ids: JSON.stringify(ids) }));
      return new Set(rows.map((r) => r.id));
    },
    // Only the ids that were new: of many records of one id, one wins.
    record: (topic, ids, expiresAt, tx) => this.step(tx, () => ids.filter((id) => this.changes(SQL.record, { topic, id, expiresAt }) === 1)),
    purge: (now) => this.step(undefined, () => this.changes(SQL.purgeConsumed, { now })),
    // No close: the connection is the storage's, closed with it.
  };

  idempotencyStore(): IdempotencyStore<BetterSqliteTx> {
    return this.idempotency;
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.opening?.catch(() => undefined);
      // What was queued before close still runs (a transaction may be committing); nothing new gets in.
      await this.tail;
      this.db?.close();
      this.db = undefined;
    })();
    return this.closing;
  }

  /**
   * Runs `work`, synchronous better-sqlite3 calls, as one atomic step: inside the transaction `tx` (as a
   * savepoint), or else as a transaction of its own, queued behind whatever this connection is doing.
   */
  private step<T>(tx: BetterSqliteTx | undefined, work: () => T): Promise<T> {
    if (tx !== undefined) {
      if (tx !== this.current) return Promise.reject(new StorageError('This transaction handle belongs to a transaction that has ended.'));
      // No retry: the transaction holds the write lock already.
      try {
        return Promise.resolve(this.connection.transaction(work).immediate());
      } catch (error) {
        return Promise.reject(toStorageError(error, this.options.file));
      }
    }
    return this.enqueue(() => this.retryWhileBusy(() => this.connection.transaction(work).immediate()));
  }

  /** Runs `work` after everything queued before it. */
  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    if (this.closing) return Promise.reject(new ClosedError(`The better-sqlite3 storage on ${this.options.file}`));
    if (this.current !== undefined && this.insideOf.getStore() === this.current) {
      // Called from inside the running transaction without its handle, it would wait for itself: fail now instead of hanging.
      return Promise.reject(
        new TidingsError(
          'TRANSACTION_HANDLE_REQUIRED',
          'Inside a transaction of this single-connection storage, pass its handle (ctx.em): e.g. send(payload, { em: ctx.em }). A nested transaction is not possible.',
        ),
      );
    }
    const done = this.tail.then(work);
    this.tail = done.catch(() => undefined);
    return done;
  }

  /** Retries `work` while another connection holds the write lock, letting the event loop run in between. */
  private async retryWhileBusy<T>(work: () => T): Promise<T> {
    const deadline = Date.now() + this.busyTimeoutMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return work();
      } catch (error) {
        if (!isBusy(error) || Date.now() > deadline) throw toStorageError(error, this.options.file);
        await new Promise((r) => setTimeout(r, Math.min(attempt, 20)));
      }
    }
  }

  private get connection(): Database.Database {
    if (!this.db) throw new ClosedError(`The better-sqlite3 storage on ${this.options.file} (not opened yet, or closed)`);
    return this.db;
  }

  private rows<R = Row>(sql: string, params: Record<string, unknown>): R[] {
    return this.statement(sql).all(params) as R[];
  }

  /** Runs a write; the number of rows it changed says whether a compare-and-set won. */
  private changes(sql: string, params: Record<string, unknown>): number {
    return this.statement(sql).run(params).changes;
  }

  /** Each SQL text is compiled once per connection. */
  private statement(sql: string): Database.Statement {
    let statement = this.statements.get(sql);
    if (!statement) this.statements.set(sql, (statement = this.connection.prepare(sql)));
    return statement;
  }
}

/** A storage adapter on a SQLite file through better-sqlite3; pass it to `Tidings.create({ storage })`. */
export function betterSqliteStorage(options: BetterSqliteOptions): BetterSqliteStorage {
  return new BetterSqliteStorage(options);
}

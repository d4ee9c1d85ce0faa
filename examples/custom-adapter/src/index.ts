import { AsyncLocalStorage } from 'node:async_hooks';
import Database from 'better-sqlite3';
import {
  ClosedError,
  StorageError,
  TidingsError,
  type ExpireRequest,
  type ExtendLeaseRequest,
  type IdempotencyStore,
  type LeaseRequest,
  type MessageState,
  type PurgeRequest,
  type RedriveRequest,
  type ReleaseRequest,
  type SettleRequest,
  type StateCounts,
  type StorageAdapter,
  type StoredMessage,
  type StoreRequest,
  type StoreResult,
  type TopicRecord,
} from '@tidings/core';

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

const SCHEMA = `
  CREATE TABLE IF NOT EXISTS messages (
    seq          INTEGER PRIMARY KEY,  -- arrival order, so leases hand out the oldest first
    topic        TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    body         TEXT    NOT NULL,
    state        TEXT    NOT NULL,
    deliveries   INTEGER NOT NULL DEFAULT 0,
    available_at INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    lease_until  INTEGER,
    lease_token  TEXT,
    last_error   TEXT,                 -- why the last delivery failed, shown with dead letters
    headers      TEXT,                 -- the message's headers as JSON text, handed back as they were
    UNIQUE (topic, id)                 -- an id the topic holds is a duplicate, whatever the dedup window says
  );
  CREATE INDEX IF NOT EXISTS messages_ready ON messages (topic, state, seq);
  -- Dedup windows outlive their messages, so they get a table of their own.
  CREATE TABLE IF NOT EXISTS dedup (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (topic, id));
  -- The idempotency store: ids exactly-once consumers have consumed.
  CREATE TABLE IF NOT EXISTS consumed (topic TEXT NOT NULL, id TEXT NOT NULL, expires_at INTEGER NOT NULL, PRIMARY KEY (topic, id));
  -- The topic registry: each declared topic's lifecycle, as first declared.
  CREATE TABLE IF NOT EXISTS topics (name TEXT PRIMARY KEY, lifecycle TEXT NOT NULL, dead_letter TEXT, max_deliveries INTEGER NOT NULL, declared_at INTEGER NOT NULL);
`;

interface TopicRow {
  name: string;
  lifecycle: TopicRecord['lifecycle'];
  dead_letter: string | null;
  max_deliveries: number;
  declared_at: number;
}

function toTopic(r: TopicRow): TopicRecord {
  const topic: TopicRecord = { name: r.name, lifecycle: r.lifecycle, maxDeliveries: r.max_deliveries, declaredAt: r.declared_at };
  if (r.dead_letter !== null) topic.deadLetter = r.dead_letter;
  return topic;
}

interface Row {
  seq: number;
  topic: string;
  id: string;
  body: string;
  state: MessageState;
  deliveries: number;
  available_at: number;
  created_at: number;
  lease_until: number | null;
  lease_token: string | null;
  last_error: string | null;
  headers: string | null;
}

function toMessage(r: Row): StoredMessage {
  return {
    id: r.id,
    topic: r.topic,
    body: r.body,
    state: r.state,
    deliveries: r.deliveries,
    availableAt: r.available_at,
    createdAt: r.created_at,
    leaseUntil: r.lease_until ?? undefined,
    leaseToken: r.lease_token ?? undefined,
    lastError: r.last_error ?? undefined,
    headers: r.headers ?? undefined,
  };
}

/** The compare-and-set every settle and release makes: the row is still in `from` and, when a token is given, still under that lease. */
const STILL_HELD = `topic = @topic AND id = @id AND state = @from AND (@leaseToken IS NULL OR lease_token = @leaseToken)`;

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
 * A Tidings storage adapter on one better-sqlite3 connection, written only against `@tidings/core`.
 * Every method is one short SQLite transaction, and every state change a compare-and-set on the state
 * Tidings says the message is in; Tidings computes those states from its lifecycle machines.
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
    return this.step(tx, () =>
      req.messages.map((m) => {
        const key = { topic: req.topic, id: m.id, now: req.now };
        // Checking first and inserting after is safe: a step holds SQLite's only write lock.
        const inWindow = this.rows(`SELECT 1 FROM dedup WHERE topic = @topic AND id = @id AND expires_at > @now`, key).length > 0;
        const stored =
          !inWindow &&
          this.changes(
            `INSERT INTO messages (topic, id, body, state, available_at, created_at, last_error, headers)
             VALUES (@topic, @id, @body, @state, @availableAt, @now, @lastError, @headers) ON CONFLICT (topic, id) DO NOTHING`,
            { ...key, body: m.body, state: req.state, availableAt: m.availableAt, lastError: m.lastError ?? null, headers: m.headers ?? null },
          ) === 1;
        if (stored && req.dedupUntil !== undefined) {
          // A record whose window passed (not purged yet) is reused for the new window.
          this.changes(
            `INSERT INTO dedup (topic, id, expires_at) VALUES (@topic, @id, @until) ON CONFLICT (topic, id) DO UPDATE SET expires_at = excluded.expires_at`,
            { ...key, until: req.dedupUntil },
          );
        }
        return { id: m.id, duplicate: !stored };
      }),
    );
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    // Pick and claim in one statement: no other broker can claim a row between the SELECT and the UPDATE.
    const pick = `SELECT seq FROM messages WHERE topic = @topic AND state = @from AND available_at <= @now ORDER BY seq LIMIT @limit`;
    const params = { topic: req.topic, from: req.from, to: req.to, now: req.now, limit: req.limit, leaseUntil: req.leaseUntil, leaseToken: req.leaseToken };
    const rows = await this.step(undefined, () =>
      req.remove
        ? this.rows(`DELETE FROM messages WHERE seq IN (${pick}) RETURNING *`, params)
        : this.rows(
            `UPDATE messages SET state = @to, deliveries = deliveries + 1, lease_until = @leaseUntil, lease_token = @leaseToken
             WHERE seq IN (${pick}) RETURNING *`,
            params,
          ),
    );
    // RETURNING has no order of its own.
    rows.sort((a, b) => a.seq - b.seq);
    const leased = rows.map(toMessage);
    // At-most-once rows are gone; answer with what the lease would have written.
    return req.remove ? leased.map((m) => ({ ...m, state: req.to, deliveries: m.deliveries + 1, leaseUntil: req.leaseUntil, leaseToken: req.leaseToken })) : leased;
  }

  async extendLease(req: ExtendLeaseRequest, tx?: BetterSqliteTx): Promise<boolean> {
    const changed = await this.step(tx, () =>
      this.changes(`UPDATE messages SET lease_until = @leaseUntil WHERE topic = @topic AND id = @id AND state = @state AND lease_token = @leaseToken`, {
        topic: req.topic,
        id: req.item.id,
        state: req.state,
        leaseToken: req.item.leaseToken ?? null,
        leaseUntil: req.leaseUntil,
      }),
    );
    return changed === 1;
  }

  async settle(req: SettleRequest, tx?: BetterSqliteTx): Promise<string[]> {
    return this.step(tx, () =>
      req.items
        .filter((item) => {
          const params = { topic: req.topic, id: item.id, from: req.from, to: req.to, leaseToken: item.leaseToken ?? null };
          const sql = req.remove
            ? `DELETE FROM messages WHERE ${STILL_HELD}`
            : `UPDATE messages SET state = @to, lease_until = NULL, lease_token = NULL WHERE ${STILL_HELD}`;
          return this.changes(sql, params) === 1;
        })
        .map((item) => item.id),
    );
  }

  async release(req: ReleaseRequest, tx?: BetterSqliteTx): Promise<string[]> {
    return this.step(tx, () =>
      req.items
        .filter(
          (item) =>
            this.changes(`UPDATE messages SET state = @to, available_at = @availableAt, lease_until = NULL, lease_token = NULL, last_error = @error WHERE ${STILL_HELD}`, {
              topic: req.topic,
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
    const params = { topic: req.topic, from: req.from, to: req.to, now: req.now, atLeast: req.deliveries?.atLeast ?? null, below: req.deliveries?.below ?? null };
    const rows = await this.step(tx, () =>
      this.rows(
        `UPDATE messages SET state = @to, available_at = @now, lease_until = NULL, lease_token = NULL
         WHERE topic = @topic AND state = @from AND lease_until <= @now
           AND (@atLeast IS NULL OR deliveries >= @atLeast) AND (@below IS NULL OR deliveries < @below) RETURNING *`,
        params,
      ),
    );
    return rows.map(toMessage);
  }

  async redrive(req: RedriveRequest): Promise<number> {
    // A redriven message starts a new lifecycle: no deliveries, fresh timestamps.
    return this.step(undefined, () =>
      this.changes(
        `UPDATE messages SET state = @to, deliveries = 0, available_at = @now, created_at = @now, lease_until = NULL, lease_token = NULL, last_error = NULL
         WHERE topic = @topic AND state = @from AND (@ids IS NULL OR id IN (SELECT value FROM json_each(@ids)))`,
        { topic: req.topic, from: req.from, to: req.to, now: req.now, ids: req.ids ? JSON.stringify(req.ids) : null },
      ),
    );
  }

  async counts(topic?: string): Promise<StateCounts> {
    const rows = await this.step(undefined, () =>
      this.rows<{ topic: string; state: MessageState; n: number }>(
        `SELECT topic, state, COUNT(*) AS n FROM messages WHERE @topic IS NULL OR topic = @topic GROUP BY topic, state`,
        { topic: topic ?? null },
      ),
    );
    const out: StateCounts = topic === undefined ? {} : { [topic]: {} };
    for (const r of rows) (out[r.topic] ??= {})[r.state] = r.n;
    return out;
  }

  async peek(topic: string, state: MessageState, limit: number): Promise<StoredMessage[]> {
    const rows = await this.step(undefined, () => this.rows(`SELECT * FROM messages WHERE topic = @topic AND state = @state ORDER BY seq LIMIT @limit`, { topic, state, limit }));
    return rows.map(toMessage);
  }

  async declareTopic(topic: TopicRecord): Promise<TopicRecord> {
    const params = { name: topic.name, lifecycle: topic.lifecycle, deadLetter: topic.deadLetter ?? null, maxDeliveries: topic.maxDeliveries, declaredAt: topic.declaredAt };
    const [kept] = await this.step(undefined, () => {
      // The first declaration wins: a second one with another lifecycle reads the first and is refused by Tidings.
      this.changes(
        `INSERT INTO topics (name, lifecycle, dead_letter, max_deliveries, declared_at) VALUES (@name, @lifecycle, @deadLetter, @maxDeliveries, @declaredAt) ON CONFLICT (name) DO NOTHING`,
        params,
      );
      return this.rows<TopicRow>(`SELECT * FROM topics WHERE name = @name`, params);
    });
    return toTopic(kept!);
  }

  async topics(): Promise<TopicRecord[]> {
    return (await this.step(undefined, () => this.rows<TopicRow>(`SELECT * FROM topics ORDER BY name`, {}))).map(toTopic);
  }

  async purge(req: PurgeRequest): Promise<number> {
    const params = { topic: req.topic ?? null, now: req.now, before: req.before ?? null, states: JSON.stringify(req.states ?? []) };
    return this.step(undefined, () => {
      const windows = this.changes(`DELETE FROM dedup WHERE expires_at <= @now AND (@topic IS NULL OR topic = @topic)`, params);
      const messages = this.changes(
        `DELETE FROM messages WHERE @before IS NOT NULL AND created_at < @before AND state IN (SELECT value FROM json_each(@states))
         AND (@topic IS NULL OR topic = @topic)`,
        params,
      );
      return windows + messages;
    });
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
      const rows = await this.step(tx, () =>
        this.rows<{ id: string }>(`SELECT id FROM consumed WHERE topic = @topic AND id IN (SELECT value FROM json_each(@ids))`, { topic, ids: JSON.stringify(ids) }),
      );
      return new Set(rows.map((r) => r.id));
    },
    record: (topic, ids, expiresAt, tx) =>
      this.step(tx, () =>
        ids.filter((id) => this.changes(`INSERT INTO consumed (topic, id, expires_at) VALUES (@topic, @id, @expiresAt) ON CONFLICT DO NOTHING`, { topic, id, expiresAt }) === 1),
      ),
    purge: (now) => this.step(undefined, () => this.changes(`DELETE FROM consumed WHERE expires_at <= @now`, { now })),
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

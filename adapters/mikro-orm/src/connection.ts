import { createHash } from 'node:crypto';
import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import { ClosedError, StorageError, TidingsError } from '@tidings/core';
import type { SqlDialect } from './dialect.js';
import { classify, toTidingsError } from './errors.js';
import { serializeQueries } from './serialize.js';

/** One result row of a hand-written statement. */
export type SqlRow = Record<string, unknown>;

/**
 * A driver whose statements run synchronously on the raw connection knex hands out (better-sqlite3): Tidings' own
 * statements then skip the query builder, and its writes outside a caller's transaction commit in groups.
 */
export interface SyncStatements {
  /** Runs one statement on `conn`: its rows for a SELECT or RETURNING, `[]` otherwise; throws the driver's error. */
  run(conn: unknown, sql: string, params: readonly unknown[]): SqlRow[];
}

/** The transaction of a group commit: Tidings' writes that arrived together, on the raw connection. */
export class WriteGroup {
  constructor(readonly conn: unknown) {}
}

/** What a statement runs in: a caller's MikroORM transaction, or a group commit. */
export type SqlTx = EntityManager | WriteGroup;

interface GroupTask {
  fn: (tx: WriteGroup) => Promise<unknown>;
  durable: boolean;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** How a driver package reaches its database. */
export interface SqlConnectionOptions {
  dialect: SqlDialect;
  /** Opens (or hands over) the MikroORM instance. */
  connect: () => Promise<MikroORM>;
  /** Close the ORM on `close()`: true when Tidings opened it, false for an application's own. */
  ownsOrm: boolean;
  /** Where the data lives, for error messages (never with a password). */
  target: string;
  /** Attempts for a statement that hit a busy or locked database (default 5). */
  busyRetries?: number;
  /** The synchronous statement runner, when the opened ORM's driver has one. */
  syncStatements?: (orm: MikroORM) => SyncStatements | undefined;
  /**
   * With a synchronous driver: statements that make a commit skip its fsync, and that restore it. A group commit of
   * writes whose loss on a power cut only means a redelivery (a lease, an at-least-once ack) runs between them.
   */
  lazyCommit?: { begin: string; end: string };
}

type Pool = { acquireConnection(): Promise<unknown>; releaseConnection(conn: unknown): unknown; pool?: { max?: number } };

/**
 * The one way Tidings' SQL reaches a database: the ORM handle, statements with their busy retry, transactions,
 * and the conversion of driver errors into typed Tidings errors. The storage, its idempotency store and the
 * migrator all run through it, so none of them needs another.
 */
export class SqlConnection {
  readonly dialect: SqlDialect;
  readonly target: string;
  private ormInstance?: MikroORM;
  private isClosed = false;
  private readonly busyRetries: number;
  /** Statements and transactions tried again because the database was busy (another process held its lock). */
  retried = 0;
  /** Which transaction, if any, the calling code runs inside, to catch calls that forgot its handle. */
  private readonly insideOf = new AsyncLocalStorage<EntityManager>();
  /** Transactions whose callback is still running. */
  private readonly running = new WeakSet<EntityManager>();
  private sync?: SyncStatements;
  /** Transactions several handlers share, with the function that gives their connection back its own `query`. */
  private readonly shared = new WeakMap<EntityManager, Promise<(() => void) | undefined>>();
  /** Writes waiting for the next group commit, and the one being committed. */
  private queue: GroupTask[] = [];
  private flushing?: Promise<void>;

  constructor(private readonly options: SqlConnectionOptions) {
    this.dialect = options.dialect;
    this.target = options.target;
    this.busyRetries = options.busyRetries ?? 5;
  }

  /** Whether Tidings opened the ORM itself, rather than being handed an application's. */
  get ownsOrm(): boolean {
    return this.options.ownsOrm;
  }

  /** True once `close()` began: every statement and transaction is refused with `ClosedError` from then on. */
  get closed(): boolean {
    return this.isClosed;
  }

  /** The MikroORM instance (after `open()`). */
  get orm(): MikroORM {
    if (!this.ormInstance) throw new ClosedError(`The ${this.dialect.name} storage (not opened yet, or closed)`);
    return this.ormInstance;
  }

  /** Opens the ORM; a failure to reach the database becomes a typed error. */
  async open(): Promise<void> {
    try {
      this.ormInstance = await this.options.connect();
      this.sync = this.options.syncStatements?.(this.ormInstance);
    } catch (error) {
      throw toTidingsError(error, classify(error, this.dialect), 'connect', this.target);
    }
  }

  /**
   * A call without a handle from inside a running transaction needs a second connection. With a pool of one (SQLite)
   * it would wait for the very transaction it runs in: it fails at once instead of hanging.
   */
  private assertNotWaitingForItself(): void {
    const outer = this.insideOf.getStore();
    if (outer === undefined || !this.running.has(outer)) return;
    if ((this.pool.pool?.max ?? 1) > 1) return;
    throw new TidingsError(
      'TRANSACTION_HANDLE_REQUIRED',
      `Inside a transaction of the ${this.dialect.name} storage, whose pool has one connection, pass its handle (ctx.em): e.g. send(payload, { em: ctx.em }). A nested transaction is not possible.`,
    );
  }

  private get pool(): Pool {
    return (this.orm.em.getConnection() as unknown as { getKnex(): { client: Pool } }).getKnex().client;
  }

  /** Runs `fn` on a raw connection of the pool, given back afterwards. */
  private async withRaw<T>(fn: (conn: unknown) => T | Promise<T>): Promise<T> {
    let conn: unknown;
    try {
      conn = await this.pool.acquireConnection();
    } catch (error) {
      if (this.isClosed) throw new ClosedError(`The ${this.dialect.name} storage`);
      throw toTidingsError(error, classify(error, this.dialect), 'connect', this.target);
    }
    try {
      return await fn(conn);
    } finally {
      await this.pool.releaseConnection(conn);
    }
  }

  /** One statement through the synchronous driver, its error converted. */
  private runSync(conn: unknown, sql: string, params: readonly unknown[], where: string): SqlRow[] {
    try {
      return this.sync!.run(conn, sql, params);
    } catch (error) {
      throw toTidingsError(error, classify(error, this.dialect), where, this.target);
    }
  }

  /** The raw connection of a caller's transaction; refused once that transaction has ended. */
  private async connectionOf(tx: EntityManager, where: string): Promise<unknown> {
    const trx = tx.getTransactionContext<{ isCompleted(): boolean; client: Pool & { driverName?: string } }>();
    if (!trx) return undefined;
    if (trx.isCompleted()) throw new StorageError(`${where} on ${this.target} was given the handle of a transaction that has ended; nothing was written.`);
    // Only a connection of the driver the synchronous statements are written for: another driver's (an application's
    // MikroORM on sqlite3) would take them without a word, its failures arriving later as events, and a failed store
    // would read as "nothing new" (every message a duplicate). Its statements go through knex, which awaits them.
    if (trx.client.driverName !== this.driverName) return undefined;
    return trx.client.acquireConnection();
  }

  /** The knex driver name of Tidings' own ORM (`better-sqlite3` where statements run synchronously). */
  private get driverName(): string | undefined {
    return (this.orm.em.getConnection() as unknown as { getKnex(): { client: { driverName?: string } } }).getKnex().client.driverName;
  }

  /**
   * Runs `fn` in a transaction for Tidings' own writes. With a synchronous driver, writes that arrive together (in one
   * turn of the event loop) share one transaction and so one commit, each behind a savepoint so that one failing
   * rolls back only itself; a lone write waits only for that turn to end. A group none of whose writes is `durable`
   * commits without an fsync (see `lazyCommit`); the next durable commit makes it durable too, as the log is written
   * in order. Otherwise `fn` runs in a transaction of its own when `atomic`, or as plain statements.
   */
  write<T>(fn: (tx: SqlTx | undefined) => Promise<T>, options: { atomic: boolean; durable: boolean }): Promise<T> {
    if (this.isClosed) return Promise.reject(new ClosedError(`The ${this.dialect.name} storage`));
    this.assertNotWaitingForItself();
    if (!this.sync) return options.atomic ? this.transaction(fn) : fn(undefined);
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, durable: options.durable, resolve: resolve as (v: unknown) => void, reject });
      if (this.queue.length === 1 && !this.flushing) setImmediate(() => void this.flush());
    });
  }

  private async flush(): Promise<void> {
    const tasks = this.queue;
    this.queue = [];
    if (tasks.length === 0) return;
    let done!: () => void;
    this.flushing = new Promise((r) => (done = r));
    try {
      await this.withRaw((conn) => this.commitGroup(conn, tasks));
    } catch (error) {
      // Resolved or rejected tasks ignore this; the others learn why their group did not commit.
      for (const task of tasks) task.reject(error);
    } finally {
      this.flushing = undefined;
      done();
      if (this.queue.length > 0) setImmediate(() => void this.flush());
    }
  }

  /** One group's transaction: each task behind a savepoint, one commit, and only then each told its outcome. */
  private async commitGroup(conn: unknown, tasks: GroupTask[]): Promise<void> {
    const group = new WriteGroup(conn);
    const run = (sql: string) => this.runSync(conn, sql, [], 'commit');
    // Set outside the transaction, where SQLite takes it.
    const lazy = this.options.lazyCommit && !tasks.some((t) => t.durable) ? this.options.lazyCommit : undefined;
    if (lazy) run(lazy.begin);
    try {
      run('BEGIN IMMEDIATE');
      const results: Array<[GroupTask, unknown]> = [];
      for (const task of tasks) {
        run('SAVEPOINT tidings_write');
        try {
          results.push([task, await task.fn(group)]);
          run('RELEASE tidings_write');
        } catch (error) {
          run('ROLLBACK TO tidings_write');
          run('RELEASE tidings_write');
          task.reject(error);
        }
      }
      try {
        run('COMMIT');
      } catch (error) {
        try {
          run('ROLLBACK');
        } catch {
          // Already rolled back by SQLite itself.
        }
        throw error;
      }
      for (const [task, value] of results) task.resolve(value);
    } finally {
      if (lazy) run(lazy.end);
    }
  }

  /**
   * Lets several handlers issue statements at once in `tx` until it ends: where the driver would not run them one after
   * another itself, they take turns on the transaction's connection. Synchronous up to the first statement, so handlers
   * starting together share one wrapper.
   */
  share(tx: EntityManager): void {
    if (this.dialect.queuesStatements || this.shared.has(tx)) return;
    const trx = tx.getTransactionContext<{ client: Pool }>();
    if (!trx) return;
    this.shared.set(
      tx,
      Promise.resolve(trx.client.acquireConnection()).then((conn) => serializeQueries(conn as { query: (...args: unknown[]) => unknown })),
    );
  }

  /** Runs one statement (in `tx` if given), retrying while the database is busy, and converts driver errors. */
  async exec(sql: string, params: unknown[], tx: SqlTx | undefined, where: string): Promise<SqlRow[]> {
    // A group's writes were accepted before any close, and a close commits them first.
    if (tx instanceof WriteGroup) return this.runSync(tx.conn, sql, params, where);
    if (this.isClosed) throw new ClosedError(`The ${this.dialect.name} storage`);
    if (!tx) this.assertNotWaitingForItself();
    if (this.sync) {
      const conn = tx && (await this.connectionOf(tx, where));
      if (conn !== undefined) return this.runSync(conn, sql, params, where);
      if (!tx) return this.withRaw((c) => this.runSync(c, sql, params, where));
    }
    const knex = (tx ?? (this.orm.em as EntityManager)).getConnection().getKnex();
    // The leading comment makes knex's SQLite client fetch rows for every statement (it would
    // only `run` a DELETE … RETURNING); bindings go to the driver, not into the SQL text.
    const ctx = tx?.getTransactionContext();
    for (let attempt = 1; ; attempt++) {
      try {
        const query = knex.raw(`/* tidings */ ${sql}`, params as never[]);
        if (ctx) query.transacting(ctx);
        // Only on connections Tidings opened, which plan every run afresh (see `namesStatements`).
        if (this.dialect.namesStatements && this.options.ownsOrm) query.options({ name: statementName(sql) });
        const res = (await query) as SqlRow[] | { rows: SqlRow[] };
        return Array.isArray(res) ? res : res.rows;
      } catch (error) {
        const kind = classify(error, this.dialect);
        // Inside a transaction the whole transaction must be retried, not one statement of it.
        if (!tx && kind === 'busy' && attempt < this.busyRetries) {
          this.retried++;
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
          continue;
        }
        throw toTidingsError(error, kind, where, this.target);
      }
    }
  }

  /** Runs `fn` in a new transaction, retried whole while the database is busy; `fn`'s own errors pass through. */
  async transaction<T>(fn: (tx: EntityManager) => Promise<T>): Promise<T> {
    if (this.isClosed) throw new ClosedError(`The ${this.dialect.name} storage`);
    this.assertNotWaitingForItself();
    for (let attempt = 1; ; attempt++) {
      try {
        return await (this.orm.em.fork() as EntityManager).transactional(async (em) => {
          this.running.add(em as EntityManager);
          try {
            return await this.insideOf.run(em as EntityManager, () => fn(em as EntityManager));
          } finally {
            this.running.delete(em as EntityManager);
            // Before the commit (or rollback) goes out on it, the connection takes its own `query` back.
            (await this.shared.get(em as EntityManager))?.();
          }
        });
      } catch (error) {
        const kind = classify(error, this.dialect);
        if (kind === 'busy' && attempt < this.busyRetries) {
          this.retried++;
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
          continue;
        }
        // The callback's own errors (a handler's) pass through as they are; only the database's are converted.
        throw kind ? toTidingsError(error, kind, 'transaction', this.target) : error;
      }
    }
  }

  /** Refuses further statements, runs `release` (what else holds the database, such as a listening connection), then closes an ORM Tidings opened. */
  async close(release?: () => Promise<unknown>): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    // Writes already accepted still commit.
    await this.flushing;
    if (this.queue.length > 0) await this.flush();
    await release?.();
    if (this.options.ownsOrm) await this.ormInstance?.close(true);
  }
}

const names = new Map<string, string>();

/** A name per statement text, the same in every process and on every connection, so it is prepared once on each. */
function statementName(sql: string): string {
  let name = names.get(sql);
  if (name === undefined) names.set(sql, (name = `tidings_${createHash('sha1').update(sql).digest('hex').slice(0, 16)}`));
  return name;
}

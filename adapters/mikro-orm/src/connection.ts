import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import { ClosedError, TidingsError } from '@tidings/core';
import type { SqlDialect } from './dialect.js';
import { classify, toTidingsError } from './errors.js';

/** One result row of a hand-written statement. */
export type SqlRow = Record<string, unknown>;

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
}

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
  /** Which transaction, if any, the calling code runs inside, to catch calls that forgot its handle. */
  private readonly insideOf = new AsyncLocalStorage<EntityManager>();
  /** Transactions whose callback is still running. */
  private readonly running = new WeakSet<EntityManager>();

  constructor(private readonly options: SqlConnectionOptions) {
    this.dialect = options.dialect;
    this.target = options.target;
    this.busyRetries = options.busyRetries ?? 5;
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
    const pool = (this.orm.em.getConnection() as unknown as { getKnex(): { client: { pool?: { max?: number } } } }).getKnex().client.pool;
    if ((pool?.max ?? 1) > 1) return;
    throw new TidingsError(
      'TRANSACTION_HANDLE_REQUIRED',
      `Inside a transaction of the ${this.dialect.name} storage, whose pool has one connection, pass its handle (ctx.em): e.g. send(payload, { em: ctx.em }). A nested transaction is not possible.`,
    );
  }

  /** Runs one statement (in `tx` if given), retrying while the database is busy, and converts driver errors. */
  async exec(sql: string, params: unknown[], tx: EntityManager | undefined, where: string): Promise<SqlRow[]> {
    if (this.isClosed) throw new ClosedError(`The ${this.dialect.name} storage`);
    if (!tx) this.assertNotWaitingForItself();
    const knex = (tx ?? (this.orm.em as EntityManager)).getConnection().getKnex();
    // The leading comment makes knex's SQLite client fetch rows for every statement (it would
    // only `run` a DELETE … RETURNING); bindings go to the driver, not into the SQL text.
    const ctx = tx?.getTransactionContext();
    for (let attempt = 1; ; attempt++) {
      try {
        const query = knex.raw(`/* tidings */ ${sql}`, params as never[]);
        if (ctx) query.transacting(ctx);
        const res = (await query) as SqlRow[] | { rows: SqlRow[] };
        return Array.isArray(res) ? res : res.rows;
      } catch (error) {
        const kind = classify(error, this.dialect);
        // Inside a transaction the whole transaction must be retried, not one statement of it.
        if (!tx && kind === 'busy' && attempt < this.busyRetries) {
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
          }
        });
      } catch (error) {
        const kind = classify(error, this.dialect);
        if (kind === 'busy' && attempt < this.busyRetries) {
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
    await release?.();
    if (this.options.ownsOrm) await this.ormInstance?.close(true);
  }
}

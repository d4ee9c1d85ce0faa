import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import {
  ClosedError,
  TidingsError,
  type ExpireRequest,
  type ExtendLeaseRequest,
  type ExpireResult,
  type IdempotencyStore,
  type LeaseRequest,
  type MessageState,
  type PurgeRequest,
  type RedriveRequest,
  type ReleaseRequest,
  type SettleItem,
  type SettleRequest,
  type StateCounts,
  type StorageAdapter,
  type StoredMessage,
  type StoreRequest,
  type StoreResult,
  type TopicRecord,
  type Lifecycle,
} from '@tidings/core';
import { isDriverError, isTransient, SchemaError, toTidingsError } from './errors.js';
import { MikroOrmIdempotencyStore } from './idempotency.js';
import { tidingsEntities } from './entities.js';
import { MIGRATIONS, SCHEMA_VERSION, type Migration, type SchemaDialect } from './schema.js';

/** What differs between the SQL databases the shared layer runs on. */
export interface SqlDialect extends SchemaDialect {
  /** `sqlite`, `postgresql`. */
  readonly name: string;
  /** Appended to the lease's candidate SELECT: PostgreSQL skips rows another broker is leasing. */
  readonly lockClause: string;
  /**
   * The lease's `seq` condition over its candidate SELECT, which must run once: PostgreSQL may re-run a
   * `LIMIT … FOR UPDATE SKIP LOCKED` subquery under `IN (…)` and hand out more rows than the limit.
   */
  seqIn(candidates: string): string;
  /** A subquery of the strings (column `value`) in one JSON-array parameter, so a batch of ids is one bind. */
  readonly jsonStrings: string;
  /** A subquery of rows (id, body, available_at) from one JSON-array parameter of new messages. */
  readonly jsonMessages: string;
  /** Wakes consumers in other processes after a store; run in the storing transaction. */
  readonly notifySql?: string;
  /** Subscribes to those wake-ups on a connection of its own; resolves to its closer. */
  listen?(orm: MikroORM, onTopic: (topic: string) => void): Promise<() => Promise<unknown>>;
}

/** How a driver package builds the shared storage. */
export interface MikroOrmStorageOptions {
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

const META_TABLE = `CREATE TABLE IF NOT EXISTS tidings_meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(200) NOT NULL)`;

type Row = Record<string, unknown>;
const COLUMNS = 'id, topic, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error, seq';

const TOPIC_COLUMNS = 'name, lifecycle, dead_letter, max_deliveries, declared_at';

function toTopic(r: Row): TopicRecord {
  const topic: TopicRecord = { name: r.name as string, lifecycle: r.lifecycle as Lifecycle, maxDeliveries: Number(r.max_deliveries), declaredAt: Number(r.declared_at) };
  if (r.dead_letter != null) topic.deadLetter = r.dead_letter as string;
  return topic;
}

function toMessage(r: Row): StoredMessage & { seq: number } {
  return {
    id: r.id as string,
    topic: r.topic as string,
    body: r.body as string,
    state: r.state as MessageState,
    deliveries: Number(r.deliveries),
    availableAt: Number(r.available_at),
    createdAt: Number(r.created_at),
    leaseUntil: r.lease_until == null ? undefined : Number(r.lease_until),
    leaseToken: (r.lease_token as string | null) ?? undefined,
    lastError: (r.last_error as string | null) ?? undefined,
    seq: Number(r.seq),
  };
}

const marks = (n: number) => Array.from({ length: n }, () => '?').join(', ');

/**
 * The storage adapter over MikroORM shared by every SQL driver. Entities define the schema;
 * the hot path is hand-written SQL through MikroORM's connection, each state change a
 * compare-and-set on the previous state. `ctx.em` in handlers is a transactional EntityManager.
 */
export class MikroOrmStorage implements StorageAdapter<EntityManager> {
  readonly name: string;
  private ormInstance?: MikroORM;
  private opening?: Promise<void>;
  private closed = false;
  private readonly idempotency = new MikroOrmIdempotencyStore(this);
  private readonly busyRetries: number;
  private readonly watchers = new Map<string, Set<() => void>>();
  private listening?: Promise<(() => Promise<unknown>) | undefined>;
  /** Which transaction, if any, the calling code runs inside, to catch calls that forgot its handle. */
  private readonly insideOf = new AsyncLocalStorage<EntityManager>();
  /** Transactions whose callback is still running. */
  private readonly running = new WeakSet<EntityManager>();

  constructor(private readonly options: MikroOrmStorageOptions) {
    this.name = options.dialect.name;
    this.busyRetries = options.busyRetries ?? 5;
  }

  /** The SQL dialect in use. */
  get dialect(): SqlDialect {
    return this.options.dialect;
  }

  /** The MikroORM instance (after `open()`). */
  get orm(): MikroORM {
    if (!this.ormInstance) throw new ClosedError(`The ${this.name} storage (not opened yet, or closed)`);
    return this.ormInstance;
  }

  open(): Promise<void> {
    this.opening ??= (async () => {
      try {
        this.ormInstance = await this.options.connect();
      } catch (error) {
        throw toTidingsError(error, 'connect', this.options.target);
      }
      await this.ensureSchema();
    })();
    return this.opening;
  }

  /**
   * Brings Tidings' own tables (and only those) up to date with numbered migrations; refuses a schema newer than
   * this code. The ORM must still know `tidingsEntities`, or the application's own schema tools would drop our tables.
   */
  private async ensureSchema(): Promise<void> {
    const orm = this.orm;
    for (const entity of tidingsEntities) {
      if (!orm.getMetadata().find(entity.meta.className)) {
        throw new SchemaError(
          `The MikroORM instance passed to ${this.name}Storage does not know ${entity.meta.className}: add tidingsEntities from @tidings/adapter-mikro-orm to its entities (or MikroOrmModule.forFeature(tidingsEntities)), so your own schema tools keep Tidings' tables.`,
        );
      }
    }
    const found = await this.schemaVersion();
    if (found !== undefined && !(found <= SCHEMA_VERSION)) {
      throw new SchemaError(
        `${this.options.target} holds Tidings schema version ${found}, newer than this code understands (${SCHEMA_VERSION}). Upgrade @tidings packages, or point Tidings at another database.`,
      );
    }
    // An up-to-date schema gets no DDL at all, so opening a busy database never takes a schema lock.
    if (found === SCHEMA_VERSION) return;
    await this.withSchemaRetry(() => this.exec(META_TABLE, [], undefined, 'migrate'));
    for (const migration of MIGRATIONS) {
      if (migration.version > (found ?? 0)) await this.withSchemaRetry(() => this.migrate(migration));
    }
  }

  /** Runs one migration and records its version in one transaction, unless another process already did. */
  private async migrate(migration: Migration): Promise<void> {
    const { dialect } = this.options;
    await this.transaction(async (em) => {
      if (dialect.migrationLock) await this.exec(dialect.migrationLock, [], em, 'migrate');
      if (((await this.schemaVersion(em)) ?? 0) >= migration.version) return;
      const skip = migration.unlessColumn && (await this.exec(dialect.columnsSql, [migration.unlessColumn.table], em, 'migrate')).some((c) => c.name === migration.unlessColumn!.column);
      if (!skip) for (const sql of migration.statements(dialect)) await this.exec(sql, [], em, 'migrate');
      await this.exec(
        `INSERT INTO tidings_meta (key, value) VALUES ('schema_version', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value RETURNING key`,
        [String(migration.version)],
        em,
        'migrate',
      );
    });
  }

  /** Processes opening an empty database together race on its first DDL; the loser finds the work done. */
  private async withSchemaRetry(step: () => Promise<unknown>): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await step();
        return;
      } catch (error) {
        if (attempt < 3) {
          await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 30));
          continue;
        }
        throw new SchemaError(`Could not create or update Tidings' tables in ${this.options.target}: ${(error as Error).message}`, { cause: error });
      }
    }
  }

  /** The schema version recorded in the database, or undefined when Tidings' tables are not there yet. */
  private async schemaVersion(tx?: EntityManager): Promise<number | undefined> {
    try {
      const [row] = await this.exec(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`, [], tx, 'open');
      return row ? Number(row.value) : undefined;
    } catch (error) {
      if (error instanceof SchemaError && !tx) return undefined;
      throw error;
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
      `Inside a transaction of the ${this.name} storage, whose pool has one connection, pass its handle (ctx.em): e.g. send(payload, { em: ctx.em }). A nested transaction is not possible.`,
    );
  }

  /** Runs one statement (in `tx` if given), retrying while the database is busy, and converts driver errors. */
  async exec(sql: string, params: unknown[], tx: EntityManager | undefined, where: string): Promise<Row[]> {
    if (this.closed) throw new ClosedError(`The ${this.name} storage`);
    if (!tx) this.assertNotWaitingForItself();
    const knex = (tx ?? (this.orm.em as EntityManager)).getConnection().getKnex();
    // The leading comment makes knex's SQLite client fetch rows for every statement (it would
    // only `run` a DELETE … RETURNING); bindings go to the driver, not into the SQL text.
    const ctx = tx?.getTransactionContext();
    for (let attempt = 1; ; attempt++) {
      try {
        const query = knex.raw(`/* tidings */ ${sql}`, params as never[]);
        if (ctx) query.transacting(ctx);
        const res = (await query) as Row[] | { rows: Row[] };
        return Array.isArray(res) ? res : res.rows;
      } catch (error) {
        // Inside a transaction the whole transaction must be retried, not one statement of it.
        if (!tx && isTransient(error) && attempt < this.busyRetries) {
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
          continue;
        }
        throw toTidingsError(error, where, this.options.target);
      }
    }
  }

  /** Runs several statements in one transaction (a new one, or `tx`). */
  private async inTransaction<T>(tx: EntityManager | undefined, fn: (tx: EntityManager) => Promise<T>): Promise<T> {
    if (tx) return fn(tx);
    return this.transaction(fn);
  }

  async transaction<T>(fn: (tx: EntityManager) => Promise<T>): Promise<T> {
    if (this.closed) throw new ClosedError(`The ${this.name} storage`);
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
        if (isTransient(error) && attempt < this.busyRetries) {
          await new Promise((r) => setTimeout(r, 5 * attempt + Math.random() * 10));
          continue;
        }
        // The callback's own errors (a handler's) pass through as they are; only the database's are converted.
        throw isDriverError(error) ? toTidingsError(error, 'transaction', this.options.target) : error;
      }
    }
  }

  async store(req: StoreRequest, tx?: EntityManager): Promise<StoreResult[]> {
    if (req.messages.length === 0) return [];
    const { dialect } = this.options;
    const store = async (em: EntityManager | undefined) => {
      let candidates = req.messages;
      if (req.dedupUntil !== undefined) {
        // An id is new if it has no record, or its record's window has passed.
        const fresh = await this.exec(
          `INSERT INTO tidings_dedup (topic, id, expires_at) SELECT ?, value, ? FROM (${dialect.jsonStrings}) AS ids WHERE true
           ON CONFLICT (topic, id) DO UPDATE SET expires_at = excluded.expires_at WHERE tidings_dedup.expires_at <= ?
           RETURNING id`,
          // Each id once (PostgreSQL refuses an upsert that touches a row twice), in sorted order so two
          // brokers storing overlapping batches lock rows in the same order and cannot deadlock.
          [req.topic, req.dedupUntil, JSON.stringify([...new Set(req.messages.map((m) => m.id))].sort()), req.now],
          em,
          'store',
        );
        const ok = new Set(fresh.map((r) => r.id as string));
        candidates = req.messages.filter((m) => ok.delete(m.id));
        if (candidates.length === 0) return new Set<string>();
      }
      const rows = await this.exec(
        `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at)
         SELECT ?, m.id, m.body, ?, 0, m.available_at, ? FROM (${dialect.jsonMessages}) AS m WHERE true
         ON CONFLICT (topic, id) DO NOTHING RETURNING id`,
        [req.topic, req.state, req.now, JSON.stringify(candidates)],
        em,
        'store',
      );
      if (rows.length > 0 && dialect.notifySql) await this.exec(dialect.notifySql, [req.topic], em, 'store');
      return new Set(rows.map((r) => r.id as string));
    };
    // One INSERT is atomic by itself; a transaction is needed only when the store takes several statements.
    const inserted = req.dedupUntil === undefined && !dialect.notifySql ? await store(tx) : await this.inTransaction(tx, store);
    // Within one batch the first of two equal ids wins; the second is its duplicate.
    return req.messages.map((m) => ({ id: m.id, duplicate: !inserted.delete(m.id) }));
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const pick = `SELECT seq FROM tidings_message WHERE topic = ? AND state = ? AND available_at <= ?
                  ORDER BY available_at, seq LIMIT ?${this.options.dialect.lockClause}`;
    const params = [req.topic, req.from, req.now, req.limit];
    // Only what the lease does not already know comes back; the rest is filled in below.
    const returning = 'seq, id, body, deliveries, created_at, available_at, last_error';
    const rows = req.remove
      ? await this.exec(`DELETE FROM tidings_message WHERE ${this.options.dialect.seqIn(pick)} RETURNING ${returning}`, params, undefined, 'lease')
      : await this.exec(
          `UPDATE tidings_message SET state = ?, deliveries = deliveries + 1, lease_until = ?, lease_token = ?
           WHERE ${this.options.dialect.seqIn(pick)} RETURNING ${returning}`,
          [req.to, req.leaseUntil, req.leaseToken, ...params],
          undefined,
          'lease',
        );
    const extra = req.remove ? 1 : 0;
    return rows
      .sort((a, b) => Number(a.seq) - Number(b.seq))
      .map((r) => ({
        id: r.id as string,
        topic: req.topic,
        body: r.body as string,
        state: req.to,
        deliveries: Number(r.deliveries) + extra,
        availableAt: Number(r.available_at),
        createdAt: Number(r.created_at),
        leaseUntil: req.leaseUntil,
        leaseToken: req.leaseToken,
        lastError: (r.last_error as string | null) ?? undefined,
      }));
  }

  async extendLease(req: ExtendLeaseRequest, tx?: EntityManager): Promise<boolean> {
    const rows = await this.exec(
      `UPDATE tidings_message SET lease_until = ? WHERE topic = ? AND id = ? AND state = ? AND lease_token = ? RETURNING id`,
      [req.leaseUntil, req.topic, req.item.id, req.state, req.item.leaseToken ?? null],
      tx,
      'extendLease',
    );
    return rows.length > 0;
  }

  async settle(req: SettleRequest, tx?: EntityManager): Promise<string[]> {
    const won: string[] = [];
    for (const [token, items] of groupByToken(req.items)) {
      const where = `topic = ? AND state = ? AND id IN (${this.options.dialect.jsonStrings})${token === undefined ? '' : ' AND lease_token = ?'}`;
      const params = [req.topic, req.from, JSON.stringify(items.map((i) => i.id)), ...(token === undefined ? [] : [token])];
      const rows = req.remove
        ? await this.exec(`DELETE FROM tidings_message WHERE ${where} RETURNING id`, params, tx, 'settle')
        : await this.exec(`UPDATE tidings_message SET state = ?, lease_until = NULL, lease_token = NULL WHERE ${where} RETURNING id`, [req.to, ...params], tx, 'settle');
      for (const r of rows) won.push(r.id as string);
    }
    return won;
  }

  async release(req: ReleaseRequest): Promise<string[]> {
    return this.transaction(async (em) => {
      const won: string[] = [];
      for (const item of req.items) {
        const rows = await this.exec(
          `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL, last_error = ?
           WHERE topic = ? AND id = ? AND state = ?${item.leaseToken === undefined ? '' : ' AND lease_token = ?'} RETURNING id`,
          [req.to, item.availableAt, item.error ?? null, req.topic, item.id, req.from, ...(item.leaseToken === undefined ? [] : [item.leaseToken])],
          em,
          'release',
        );
        if (rows.length === 0) continue;
        won.push(item.id);
      }
      if (req.deadLetter && won.length > 0) await this.copyToDeadLetter(req.topic, won, req.deadLetter, req.now, em);
      return won;
    });
  }

  async expire(req: ExpireRequest): Promise<ExpireResult> {
    return this.transaction(async (em) => {
      const base = `topic = ? AND state = ? AND lease_until <= ?`;
      const requeued = await this.exec(
        `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL
         WHERE ${base}${req.dead ? ' AND deliveries < ?' : ''} RETURNING id, deliveries`,
        [req.ready, req.now, req.topic, req.from, req.now, ...(req.dead ? [req.maxDeliveries] : [])],
        em,
        'expire',
      );
      const dead = req.dead
        ? await this.exec(
            `UPDATE tidings_message SET state = ?, lease_until = NULL, lease_token = NULL WHERE ${base} AND deliveries >= ? RETURNING id, deliveries`,
            [req.dead, req.topic, req.from, req.now, req.maxDeliveries],
            em,
            'expire',
          )
        : [];
      if (req.deadLetter && dead.length > 0) await this.copyToDeadLetter(req.topic, dead.map((r) => r.id as string), req.deadLetter, req.now, em);
      const out = (rows: Row[]) => rows.map((r) => ({ id: r.id as string, deliveries: Number(r.deliveries) }));
      return { requeued: out(requeued), dead: out(dead) };
    });
  }

  private async copyToDeadLetter(topic: string, ids: string[], dl: { topic: string; state: MessageState }, now: number, em: EntityManager): Promise<void> {
    await this.exec(
      `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at, last_error)
       SELECT ?, id, body, ?, 0, ?, ?, last_error FROM tidings_message WHERE topic = ? AND id IN (${this.options.dialect.jsonStrings})
       ON CONFLICT (topic, id) DO NOTHING RETURNING id`,
      [dl.topic, dl.state, now, now, topic, JSON.stringify(ids)],
      em,
      'deadLetter',
    );
  }

  async redrive(req: RedriveRequest): Promise<number> {
    // A redriven message starts a new lifecycle: deliveries reset, fresh timestamps.
    const ids = req.ids ?? [];
    if (req.ids && ids.length === 0) return 0;
    const rows = await this.exec(
      `UPDATE tidings_message SET state = ?, deliveries = 0, available_at = ?, created_at = ?, lease_until = NULL, lease_token = NULL
       WHERE topic = ? AND state = 'dead'${req.ids ? ` AND id IN (${this.options.dialect.jsonStrings})` : ''} RETURNING id`,
      [req.state, req.now, req.now, req.topic, ...(req.ids ? [JSON.stringify(ids)] : [])],
      undefined,
      'redrive',
    );
    return rows.length;
  }

  async counts(topic?: string): Promise<StateCounts> {
    const rows = await this.exec(
      `SELECT topic, state, COUNT(*) AS n FROM tidings_message${topic === undefined ? '' : ' WHERE topic = ?'} GROUP BY topic, state`,
      topic === undefined ? [] : [topic],
      undefined,
      'counts',
    );
    const out: StateCounts = topic === undefined ? {} : { [topic]: {} };
    for (const r of rows) (out[r.topic as string] ??= {})[r.state as MessageState] = Number(r.n);
    return out;
  }

  async declareTopic(topic: TopicRecord): Promise<TopicRecord> {
    // The first declaration wins, in one statement, so two processes declaring at once agree on the record.
    await this.exec(
      `INSERT INTO tidings_topic (name, lifecycle, dead_letter, max_deliveries, declared_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING`,
      [topic.name, topic.lifecycle, topic.deadLetter ?? null, topic.maxDeliveries, topic.declaredAt],
      undefined,
      'declareTopic',
    );
    const [kept] = await this.exec(`SELECT ${TOPIC_COLUMNS} FROM tidings_topic WHERE name = ?`, [topic.name], undefined, 'declareTopic');
    return toTopic(kept!);
  }

  async topics(): Promise<TopicRecord[]> {
    return (await this.exec(`SELECT ${TOPIC_COLUMNS} FROM tidings_topic ORDER BY name`, [], undefined, 'topics')).map(toTopic);
  }

  async peek(topic: string, state: MessageState, limit: number): Promise<StoredMessage[]> {
    const rows = await this.exec(`SELECT ${COLUMNS} FROM tidings_message WHERE topic = ? AND state = ? ORDER BY seq LIMIT ?`, [topic, state, limit], undefined, 'peek');
    return rows.map(toMessage).map(({ seq: _seq, ...m }) => m);
  }

  async purge(req: PurgeRequest): Promise<number> {
    const byTopic = req.topic === undefined ? '' : ' AND topic = ?';
    const topicParam = req.topic === undefined ? [] : [req.topic];
    let removed = (await this.exec(`DELETE FROM tidings_dedup WHERE expires_at <= ?${byTopic} RETURNING id`, [req.now, ...topicParam], undefined, 'purge')).length;
    if (req.before !== undefined && req.states && req.states.length > 0) {
      removed += (
        await this.exec(
          `DELETE FROM tidings_message WHERE state IN (${marks(req.states.length)}) AND created_at < ?${byTopic} RETURNING id`,
          [...req.states, req.before, ...topicParam],
          undefined,
          'purge',
        )
      ).length;
    }
    return removed;
  }

  watch(topic: string, onStored: () => void): () => void {
    const { listen } = this.options.dialect;
    if (!listen || this.closed) return () => undefined;
    // One listening connection per storage, fanned out to each topic's consumers; without it they still poll.
    this.listening ??= listen(this.orm, (t) => this.watchers.get(t)?.forEach((wake) => wake())).catch(() => undefined);
    const set = this.watchers.get(topic) ?? new Set();
    this.watchers.set(topic, set.add(onStored));
    return () => set.delete(onStored);
  }

  idempotencyStore(): IdempotencyStore<EntityManager> {
    return this.idempotency;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.opening?.catch(() => undefined);
    this.closed = true;
    await (await this.listening)?.();
    if (this.options.ownsOrm) await this.ormInstance?.close(true);
  }
}

function groupByToken(items: SettleItem[]): Map<string | undefined, SettleItem[]> {
  const groups = new Map<string | undefined, SettleItem[]>();
  for (const item of items) {
    const g = groups.get(item.leaseToken);
    if (g) g.push(item);
    else groups.set(item.leaseToken, [item]);
  }
  return groups;
}

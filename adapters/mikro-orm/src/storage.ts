import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import type { Logger, MessageState } from '@tidings/core';
import type {
  BrowsePage,
  BrowseRequest,
  DiscardRequest,
  ExpireRequest,
  ExtendLeaseRequest,
  IdempotencyStore,
  LeaseRequest,
  PeekRequest,
  PurgeRequest,
  RedriveRequest,
  ReleaseRequest,
  RetryNowRequest,
  SettleItem,
  SettleRequest,
  StorageAdapter,
  StorageHealth,
  StoredMessage,
  StoreRequest,
  StoreResult,
  SubscriptionCounts,
  SubscriptionRecord,
  TopicRecord,
} from '@tidings/core/adapter';
import type { SqlConnection, SqlRow, SqlTx } from './connection.js';
import type { SqlDialect } from './dialect.js';
import { ForeignEntityManagerError, SchemaError } from './errors.js';
import { ensureSchema } from './migrator.js';
import { checkSchemaTools } from './schema-tools.js';
import { leasedMessage, toMessage, toSubscription, toTopic } from './rows.js';
import type { Migration } from './schema.js';
import { leaseStatement } from './sql/lease.js';
import {
  discardStatement,
  expireStatement,
  extendLeaseStatement,
  redriveStatement,
  releaseStatement,
  retryNowStatement,
  settleStatement,
} from './sql/moves.js';
import { browseStatement, countsStatement, peekStatement, purgeStatements } from './sql/reads.js';
import {
  declareSubscriptionStatement,
  declareTopicStatement,
  removeSubscriptionStatements,
  setPausedStatement,
  subscriptionsStatement,
  topicStatement,
  topicsStatement,
} from './sql/registry.js';
import type { Statement } from './sql/statement.js';
import { anySubscription, dedupRecord, firstOfEach, insertCopies } from './sql/store.js';
import { StoreBatcher } from './store-batch.js';
import { WakeUps } from './wake-ups.js';

/** What the storage is built from: its connection, the idempotency store sharing it, and its schema steps. */
export interface MikroOrmStorageParts {
  connection: SqlConnection;
  idempotency: IdempotencyStore<EntityManager>;
  migrations: readonly Migration[];
}

/**
 * The storage adapter over MikroORM shared by every SQL driver. Entities define the schema;
 * the hot path is hand-written SQL through MikroORM's connection, each state change a
 * compare-and-set on the previous state. `ctx.em` in handlers is a transactional EntityManager.
 */
export class MikroOrmStorage implements StorageAdapter<EntityManager> {
  readonly name: string;
  /** The dialect the statements below are written in. */
  private readonly options: { readonly dialect: SqlDialect };
  private readonly connection: SqlConnection;
  private readonly idempotency: IdempotencyStore<EntityManager>;
  private readonly migrations: readonly Migration[];
  private opening?: Promise<void>;
  /** The look at an application's schema tools that opening started, which `close()` waits for. */
  private schemaCheck?: Promise<void>;
  private readonly watchers = new Map<string, Set<() => void>>();
  /** The listening connection, kept alive; made when the first consumer watches. */
  private wakeUps?: WakeUps;
  /** Merges the stores of one turn into one statement (PostgreSQL). */
  private readonly storeBatch?: StoreBatcher;

  constructor(parts: MikroOrmStorageParts) {
    this.connection = parts.connection;
    this.idempotency = parts.idempotency;
    this.migrations = parts.migrations;
    this.options = { dialect: parts.connection.dialect };
    this.name = parts.connection.dialect.name;
    // SQLite's group commit is the connection's; PostgreSQL's stores are one statement each, merged per turn here.
    if (parts.connection.dialect.modifyingCtes) this.storeBatch = new StoreBatcher((req) => this.storeNow(req));
  }

  /**
   * Handlers running at once in `tx`, each on a fork of its own (MikroORM's unit of work) that keeps the transaction
   * and is flushed when the handler returns; their statements take turns on the transaction's connection. The fork is
   * made when the handler first asks for it: forking and flushing cost about 40 µs, a handler that never reads
   * `ctx.em` nothing.
   */
  async branch<T>(tx: EntityManager, fn: (own: () => EntityManager) => Promise<T>): Promise<T> {
    let fork: EntityManager | undefined;
    const result = await fn(() => {
      if (!fork) {
        this.connection.share(tx);
        fork = tx.fork({ keepTransactionContext: true, clear: true });
      }
      return fork;
    });
    // What the handler left persisted but unflushed commits with the transaction, as it would on `tx` itself.
    if (fork) await fork.flush();
    return result;
  }

  /** How many statements and transactions were tried again because the database was busy: lock contention between processes. */
  get busyRetries(): number {
    return this.connection.retried;
  }

  /** The SQL dialect in use. */
  get dialect(): SqlDialect {
    return this.options.dialect;
  }

  /** The MikroORM instance (after `open()`). */
  get orm(): MikroORM {
    return this.connection.orm;
  }

  private get closed(): boolean {
    return this.connection.closed;
  }

  /** Opens the ORM and migrates Tidings' tables; `logger` hears of an application's ORM whose schema tools would change them. */
  open(context: { logger?: Logger } = {}): Promise<void> {
    this.opening ??= (async () => {
      await this.connection.open();
      await ensureSchema(this.connection, this.migrations);
      // Not awaited: reading the schema takes 20 to 150 ms, which start-up need not wait for.
      if (!this.connection.ownsOrm && context.logger) this.schemaCheck = checkSchemaTools(this.orm, context.logger).catch(() => undefined);
    })();
    return this.opening;
  }

  private async exec(sql: string, params: unknown[], tx: SqlTx | undefined, where: string): Promise<SqlRow[]> {
    try {
      return await this.connection.exec(sql, params, tx, where);
    } catch (error) {
      // Opening made the tables here, so a caller's transaction that cannot find them is on another database.
      if (tx !== undefined && error instanceof SchemaError && this.opening) throw new ForeignEntityManagerError(this.connection.target, where, error);
      throw error;
    }
  }

  private run(statement: Statement, tx: SqlTx | undefined, where: string): Promise<SqlRow[]> {
    return this.exec(statement.sql, statement.params, tx, where);
  }

  /**
   * Runs Tidings' own writes in `tx`, or else in a write of the connection (a group commit where the driver allows);
   * `atomic` when they are several statements, `durable` when a promise depends on them surviving a power cut.
   */
  private written<T>(tx: SqlTx | undefined, options: { atomic: boolean; durable: boolean }, fn: (tx: SqlTx | undefined) => Promise<T>): Promise<T> {
    return tx ? fn(tx) : this.connection.write(fn, options);
  }

  transaction<T>(fn: (tx: EntityManager) => Promise<T>): Promise<T> {
    return this.connection.transaction(fn);
  }

  store(req: StoreRequest, tx?: EntityManager): Promise<StoreResult[]> {
    if (req.messages.length === 0) return Promise.resolve([]);
    // Outside a caller's transaction, where the statement is one of its own (PostgreSQL), a turn's stores share it.
    if (tx === undefined && this.storeBatch) return this.storeBatch.add(req);
    return this.storeNow(req, tx);
  }

  private async storeNow(req: StoreRequest, tx?: EntityManager): Promise<StoreResult[]> {
    const { dialect } = this.options;
    const dedup = req.dedupUntil !== undefined;
    const idsOf = (rows: SqlRow[]) => new Set(rows.map((r) => r.id as string));
    let fresh: Set<string> | undefined;
    let copied: Set<string>;
    if (dialect.modifyingCtes) {
      // One statement: the dedup record, the copies of the ids it found new, and the wake-up.
      const record = dedup ? dedupRecord(dialect, req) : undefined;
      const insert = insertCopies(dialect, req, firstOfEach(req.messages), dedup ? 'm.id IN (SELECT id FROM fresh)' : 'true');
      const ctes = [...(record ? [`fresh AS (${record.sql})`] : []), `stored AS (${insert.sql})`];
      const params = [...(record?.params ?? []), ...insert.params];
      if (dialect.notifyCte) {
        ctes.push(`woken AS (${dialect.notifyCte})`);
        params.push(req.topic);
      }
      const woken = dialect.notifyCte ? ' LEFT JOIN woken ON true' : '';
      const sql = `WITH ${ctes.join(', ')} SELECT 's' AS kind, stored.id FROM stored${woken}${record ? " UNION ALL SELECT 'f' AS kind, id FROM fresh" : ''}`;
      const rows = await this.written(tx, { atomic: false, durable: true }, (t) => this.exec(sql, params, t, 'store'));
      copied = idsOf(rows.filter((r) => r.kind === 's'));
      if (record) fresh = idsOf(rows.filter((r) => r.kind === 'f'));
    } else {
      // Durable: the producer's ack says the message is stored. Atomic when the dedup record is a statement of its own.
      [fresh, copied] = await this.written(tx, { atomic: dedup, durable: true }, async (t) => {
        let candidates = firstOfEach(req.messages);
        let found: Set<string> | undefined;
        if (dedup) {
          found = idsOf(await this.run(dedupRecord(dialect, req), t, 'store'));
          candidates = candidates.filter((m) => found!.has(m.id));
          if (candidates.length === 0) return [found, new Set<string>()] as const;
        }
        return [found, idsOf(await this.run(insertCopies(dialect, req, candidates), t, 'store'))] as const;
      });
    }
    // An id with no copy is a duplicate where every subscription holds it; a topic with none keeps nothing, refusing nothing.
    const uncopied = req.messages.some((m) => !copied.has(m.id) && (fresh?.has(m.id) ?? true));
    const anywhere = uncopied ? (await this.run(anySubscription(req.topic), tx, 'store')).length > 0 : true;
    const seen = new Set<string>();
    return req.messages.map((m) => {
      const first = !seen.has(m.id) && seen.add(m.id);
      const stored = first && (fresh?.has(m.id) ?? true) && (copied.has(m.id) || !anywhere);
      return { id: m.id, duplicate: !stored };
    });
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    // A lease a power cut undoes hands the message out again, which a lifecycle with leases allows; one that deletes
    // (at-most-once) must not come undone, or the message would be delivered twice.
    const rows = await this.written(undefined, { atomic: false, durable: req.remove }, (tx) =>
      this.run(leaseStatement(this.options.dialect, req), tx, 'lease'),
    );
    // Only what the lease did not set itself came back.
    return rows.sort((a, b) => Number(a.seq) - Number(b.seq)).map((r) => leasedMessage(r, req));
  }

  async extendLease(req: ExtendLeaseRequest, tx?: EntityManager): Promise<boolean> {
    const rows = await this.written(tx, { atomic: false, durable: false }, (t) => this.run(extendLeaseStatement(req), t, 'extendLease'));
    return rows.length > 0;
  }

  settle(req: SettleRequest, tx?: EntityManager): Promise<string[]> {
    // Outside a transaction a settle is an ack after the handler: undone by a power cut, the message comes again.
    return this.written(tx, { atomic: false, durable: false }, async (t) => {
      const won: string[] = [];
      for (const [token, items] of groupByToken(req.items)) {
        for (const r of await this.run(settleStatement(this.options.dialect, req, token, items), t, 'settle')) won.push(r.id as string);
      }
      return won;
    });
  }

  async release(req: ReleaseRequest, tx?: EntityManager): Promise<string[]> {
    return this.written(tx, { atomic: true, durable: true }, async (t) => {
      const won: string[] = [];
      for (const item of req.items) if ((await this.run(releaseStatement(req, item), t, 'release')).length > 0) won.push(item.id);
      return won;
    });
  }

  async expire(req: ExpireRequest, tx?: EntityManager): Promise<StoredMessage[]> {
    return (await this.run(expireStatement(req), tx, 'expire')).map(toMessage);
  }

  async redrive(req: RedriveRequest): Promise<string[]> {
    if (req.ids && req.ids.length === 0) return [];
    return (await this.run(redriveStatement(this.options.dialect, req), undefined, 'redrive')).map((r) => r.id as string);
  }

  async counts(topic?: string): Promise<SubscriptionCounts> {
    const out: SubscriptionCounts = topic === undefined ? {} : { [topic]: {} };
    for (const r of await this.run(countsStatement(topic), undefined, 'counts')) {
      ((out[r.topic as string] ??= {})[r.subscription as string] ??= {})[r.state as MessageState] = Number(r.n);
    }
    return out;
  }

  async declareTopic(topic: TopicRecord, tx?: EntityManager): Promise<TopicRecord> {
    await this.run(declareTopicStatement(topic), tx, 'declareTopic');
    const [kept] = await this.run(topicStatement(topic.name), tx, 'declareTopic');
    return toTopic(kept!);
  }

  async topics(): Promise<TopicRecord[]> {
    return (await this.run(topicsStatement(), undefined, 'topics')).map(toTopic);
  }

  async declareSubscription(subscription: SubscriptionRecord, tx?: EntityManager): Promise<SubscriptionRecord> {
    await this.run(declareSubscriptionStatement(subscription), tx, 'declareSubscription');
    const [kept] = await this.run(subscriptionsStatement(subscription.topic, subscription.name), tx, 'declareSubscription');
    return toSubscription(kept!);
  }

  async subscriptions(topic?: string): Promise<SubscriptionRecord[]> {
    return (await this.run(subscriptionsStatement(topic), undefined, 'subscriptions')).map(toSubscription);
  }

  async removeSubscription(topic: string, name: string): Promise<number> {
    const [registry, copies] = removeSubscriptionStatements(topic, name);
    return this.written(undefined, { atomic: true, durable: true }, async (t) => {
      await this.run(registry, t, 'removeSubscription');
      return (await this.run(copies, t, 'removeSubscription')).length;
    });
  }

  async setPaused(topic: string, name: string, pausedAt: number | undefined): Promise<boolean> {
    return (await this.run(setPausedStatement(topic, name, pausedAt), undefined, 'setPaused')).length > 0;
  }

  async browse(req: BrowseRequest): Promise<BrowsePage> {
    const rows = await this.run(browseStatement(req), undefined, 'browse');
    const more = rows.length > req.limit ? rows[req.limit - 1] : undefined;
    return { messages: rows.slice(0, req.limit).map(toMessage), ...(more ? { next: `${Number(more.available_at)}:${Number(more.seq)}` } : {}) };
  }

  async discard(req: DiscardRequest): Promise<number> {
    if (req.ids && req.ids.length === 0) return 0;
    const rows = await this.written(undefined, { atomic: false, durable: true }, (t) => this.run(discardStatement(this.options.dialect, req), t, 'discard'));
    return this.options.dialect.modifyingCtes ? Number(rows[0]?.n ?? 0) : rows.length;
  }

  async retryNow(req: RetryNowRequest): Promise<string[]> {
    if (req.ids && req.ids.length === 0) return [];
    return (await this.run(retryNowStatement(this.options.dialect, req), undefined, 'retryNow')).map((r) => r.id as string);
  }

  async peek(req: PeekRequest): Promise<StoredMessage[]> {
    return (await this.run(peekStatement(req), undefined, 'peek')).map(toMessage);
  }

  async purge(req: PurgeRequest): Promise<number> {
    let removed = 0;
    for (const statement of purgeStatements(req)) removed += (await this.run(statement, undefined, 'purge')).length;
    return removed;
  }

  watch(topic: string, onStored: () => void): () => void {
    const { listen } = this.options.dialect;
    if (!listen || this.closed) return () => undefined;
    // One listening connection per storage, fanned out to each topic's consumers; without it they still poll.
    this.wakeUps ??= new WakeUps(
      { listen },
      () => this.orm,
      (t) => this.watchers.get(t)?.forEach((wake) => wake()),
      () => this.watchers.forEach((set) => set.forEach((wake) => wake())),
    );
    this.wakeUps.start();
    const set = this.watchers.get(topic) ?? new Set();
    this.watchers.set(topic, set.add(onStored));
    return () => set.delete(onStored);
  }

  health(): StorageHealth {
    return this.wakeUps ? { wakeUps: this.wakeUps.health() } : {};
  }

  idempotencyStore(): IdempotencyStore<EntityManager> {
    return this.idempotency;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.opening?.catch(() => undefined);
    await this.schemaCheck;
    // Stores accepted before the close are written, as the group commit of SQLite writes its accepted writes.
    await this.storeBatch?.drain();
    await this.connection.close(async () => this.wakeUps?.close());
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

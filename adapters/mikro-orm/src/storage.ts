import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/knex';
import type {
  ExpireRequest,
  ExtendLeaseRequest,
  IdempotencyStore,
  LeaseRequest,
  MessageState,
  PurgeRequest,
  RedriveRequest,
  ReleaseRequest,
  SettleItem,
  SettleRequest,
  StateCounts,
  StorageAdapter,
  StoredMessage,
  StoreRequest,
  StoreResult,
  TopicRecord,
  Lifecycle,
} from '@tidings/core';
import type { SqlConnection, SqlRow, SqlTx } from './connection.js';
import type { SqlDialect } from './dialect.js';
import { ensureSchema } from './migrator.js';
import type { Migration } from './schema.js';

/** What the storage is built from: its connection, the idempotency store sharing it, and its schema steps. */
export interface MikroOrmStorageParts {
  connection: SqlConnection;
  idempotency: IdempotencyStore<EntityManager>;
  migrations: readonly Migration[];
}

type Row = SqlRow;
const COLUMNS = 'id, topic, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error, headers, seq';

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
    headers: (r.headers as string | null) ?? undefined,
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
  /** The dialect the statements below are written in. */
  private readonly options: { readonly dialect: SqlDialect };
  private readonly connection: SqlConnection;
  private readonly idempotency: IdempotencyStore<EntityManager>;
  private readonly migrations: readonly Migration[];
  private opening?: Promise<void>;
  private readonly watchers = new Map<string, Set<() => void>>();
  private listening?: Promise<(() => Promise<unknown>) | undefined>;
  readonly branch?: <T>(tx: EntityManager, fn: (tx: EntityManager) => Promise<T>) => Promise<T>;

  constructor(parts: MikroOrmStorageParts) {
    this.connection = parts.connection;
    this.idempotency = parts.idempotency;
    this.migrations = parts.migrations;
    this.options = { dialect: parts.connection.dialect };
    this.name = parts.connection.dialect.name;
    if (parts.connection.dialect.sharedTransactions) {
      this.branch = async (tx, fn) => {
        const fork = tx.fork({ keepTransactionContext: true, clear: true });
        const result = await fn(fork);
        // What the handler left persisted but unflushed commits with the transaction, as it would on `tx` itself.
        await fork.flush();
        return result;
      };
    }
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

  open(): Promise<void> {
    this.opening ??= (async () => {
      await this.connection.open();
      await ensureSchema(this.connection, this.migrations);
    })();
    return this.opening;
  }

  private exec(sql: string, params: unknown[], tx: SqlTx | undefined, where: string): Promise<Row[]> {
    return this.connection.exec(sql, params, tx, where);
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

  async store(req: StoreRequest, tx?: EntityManager): Promise<StoreResult[]> {
    if (req.messages.length === 0) return [];
    const { dialect } = this.options;
    const dedup = req.dedupUntil !== undefined;
    // An id is new if it has no record, or its record's window has passed. Each id once (PostgreSQL refuses an
    // upsert that touches a row twice), in sorted order so two brokers storing overlapping batches lock rows in the
    // same order and cannot deadlock.
    const record = `INSERT INTO tidings_dedup (topic, id, expires_at) SELECT ?, value, ? FROM (${dialect.jsonStrings}) AS ids WHERE true
      ON CONFLICT (topic, id) DO UPDATE SET expires_at = excluded.expires_at WHERE tidings_dedup.expires_at <= ? RETURNING id`;
    const recordParams = () => [req.topic, req.dedupUntil, JSON.stringify([...new Set(req.messages.map((m) => m.id))].sort()), req.now];
    const insert = (which: string) => `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at, last_error, headers)
      SELECT ?, m.id, m.body, ?, 0, m.available_at, ?, m.last_error, m.headers FROM (${dialect.jsonMessages}) AS m WHERE ${which}
      ON CONFLICT (topic, id) DO NOTHING RETURNING id`;
    // Within one batch the first of two equal ids is the one stored.
    const firsts = (messages: StoreRequest['messages']) => {
      const ids = new Set<string>();
      return messages.filter((m) => !ids.has(m.id) && ids.add(m.id));
    };
    const ids = (rows: Row[]) => new Set(rows.map((r) => r.id as string));
    let inserted: Set<string>;
    if (dialect.modifyingCtes) {
      // One statement: the dedup record, the insert of the ids it found new, and the wake-up.
      const ctes = [...(dedup ? [`fresh AS (${record})`] : []), `stored AS (${insert(dedup ? 'm.id IN (SELECT id FROM fresh)' : 'true')})`];
      const params = [...(dedup ? recordParams() : []), req.topic, req.state, req.now, JSON.stringify(firsts(req.messages))];
      if (dialect.notifyCte) {
        ctes.push(`woken AS (${dialect.notifyCte})`);
        params.push(req.topic);
      }
      const sql = `WITH ${ctes.join(', ')} SELECT stored.id FROM stored${dialect.notifyCte ? ' LEFT JOIN woken ON true' : ''}`;
      inserted = ids(await this.written(tx, { atomic: false, durable: true }, (t) => this.exec(sql, params, t, 'store')));
    } else {
      // Durable: the producer's ack says the message is stored. Atomic when the dedup record is a statement of its own.
      inserted = await this.written(tx, { atomic: dedup, durable: true }, async (t) => {
        let candidates = req.messages;
        if (dedup) {
          const fresh = ids(await this.exec(record, recordParams(), t, 'store'));
          candidates = firsts(req.messages).filter((m) => fresh.has(m.id));
          if (candidates.length === 0) return new Set<string>();
        }
        return ids(await this.exec(insert('true'), [req.topic, req.state, req.now, JSON.stringify(candidates)], t, 'store'));
      });
    }
    // Within one batch the first of two equal ids wins; the second is its duplicate.
    return req.messages.map((m) => ({ id: m.id, duplicate: !inserted.delete(m.id) }));
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const pick = `SELECT seq FROM tidings_message WHERE topic = ? AND state = ? AND available_at <= ?
                  ORDER BY available_at, seq LIMIT ?${this.options.dialect.lockClause}`;
    const params = [req.topic, req.from, req.now, req.limit];
    // Only what the lease does not already know comes back; the rest is filled in below.
    const returning = 'seq, id, body, deliveries, created_at, available_at, last_error, headers';
    // A lease a power cut undoes hands the message out again, which a lifecycle with leases allows; one that deletes
    // (at-most-once) must not come undone, or the message would be delivered twice.
    const rows = await this.written(undefined, { atomic: false, durable: req.remove }, (tx) =>
      req.remove
        ? this.exec(`DELETE FROM tidings_message WHERE ${this.options.dialect.seqIn(pick)} RETURNING ${returning}`, params, tx, 'lease')
        : this.exec(
            `UPDATE tidings_message SET state = ?, deliveries = deliveries + 1, lease_until = ?, lease_token = ?
             WHERE ${this.options.dialect.seqIn(pick)} RETURNING ${returning}`,
            [req.to, req.leaseUntil, req.leaseToken, ...params],
            tx,
            'lease',
          ),
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
        headers: (r.headers as string | null) ?? undefined,
      }));
  }

  async extendLease(req: ExtendLeaseRequest, tx?: EntityManager): Promise<boolean> {
    const rows = await this.written(tx, { atomic: false, durable: false }, (t) =>
      this.exec(
        `UPDATE tidings_message SET lease_until = ? WHERE topic = ? AND id = ? AND state = ? AND lease_token = ? RETURNING id`,
        [req.leaseUntil, req.topic, req.item.id, req.state, req.item.leaseToken ?? null],
        t,
        'extendLease',
      ),
    );
    return rows.length > 0;
  }

  settle(req: SettleRequest, tx?: EntityManager): Promise<string[]> {
    // Outside a transaction a settle is an ack after the handler: undone by a power cut, the message comes again.
    return this.written(tx, { atomic: false, durable: false }, (t) => this.settleIn(req, t));
  }

  private async settleIn(req: SettleRequest, tx: SqlTx | undefined): Promise<string[]> {
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

  async release(req: ReleaseRequest, tx?: EntityManager): Promise<string[]> {
    return this.written(tx, { atomic: true, durable: true }, async (em) => {
      const won: string[] = [];
      for (const item of req.items) {
        const rows = await this.exec(
          `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL, last_error = ?
           WHERE topic = ? AND id = ? AND state = ?${item.leaseToken === undefined ? '' : ' AND lease_token = ?'} RETURNING id`,
          [req.to, item.availableAt, item.error ?? null, req.topic, item.id, req.from, ...(item.leaseToken === undefined ? [] : [item.leaseToken])],
          em,
          'release',
        );
        if (rows.length > 0) won.push(item.id);
      }
      return won;
    });
  }

  async expire(req: ExpireRequest, tx?: EntityManager): Promise<StoredMessage[]> {
    const { atLeast, below } = req.deliveries ?? {};
    const rows = await this.exec(
      `UPDATE tidings_message SET state = ?, available_at = ?, lease_until = NULL, lease_token = NULL
       WHERE topic = ? AND state = ? AND lease_until <= ?${atLeast === undefined ? '' : ' AND deliveries >= ?'}${below === undefined ? '' : ' AND deliveries < ?'}
       RETURNING ${COLUMNS}`,
      [req.to, req.now, req.topic, req.from, req.now, ...(atLeast === undefined ? [] : [atLeast]), ...(below === undefined ? [] : [below])],
      tx,
      'expire',
    );
    return rows.map(toMessage).map(({ seq: _seq, ...m }) => m);
  }

  async redrive(req: RedriveRequest): Promise<number> {
    // A redriven message starts a new lifecycle: deliveries reset, fresh timestamps.
    const ids = req.ids ?? [];
    if (req.ids && ids.length === 0) return 0;
    const rows = await this.exec(
      `UPDATE tidings_message SET state = ?, deliveries = 0, available_at = ?, created_at = ?, lease_until = NULL, lease_token = NULL, last_error = NULL
       WHERE topic = ? AND state = ?${req.ids ? ` AND id IN (${this.options.dialect.jsonStrings})` : ''} RETURNING id`,
      [req.to, req.now, req.now, req.topic, req.from, ...(req.ids ? [JSON.stringify(ids)] : [])],
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
    await this.connection.close(async () => (await this.listening)?.());
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

// Raw drivers in the same process, doing the least a durable queue must do: the ceilings Tidings is compared with.
import Database from 'better-sqlite3';
import pg from 'pg';
import type { BenchContext } from './context.js';
import { payload } from './messages.js';
import type { Measured } from './rows.js';

const BATCH = 100;
const body = () => JSON.stringify(payload(0));

/** A WAL database with the Tidings-like table: an id, a body, a state and when it is available. */
function sqlite(file: string): Database.Database {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE m (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, state TEXT NOT NULL, available_at INTEGER NOT NULL);
           CREATE INDEX m_ready ON m (state, available_at, seq);`);
  return db;
}

/** better-sqlite3: insert 100 rows, lease them (UPDATE … RETURNING) and delete them, three commits per batch. */
export function rawSqliteBatches(file: string, count: number): Measured {
  const db = sqlite(file);
  try {
    const insert = db.prepare(`INSERT INTO m (id, body, state, available_at) VALUES (?, ?, 'ready', 0)`);
    const insertMany = db.transaction((from: number) => {
      for (let k = 0; k < BATCH; k++) insert.run(`m-${from + k}`, body());
    });
    const lease = db.prepare(
      `UPDATE m SET state = 'leased' WHERE seq IN (SELECT seq FROM m WHERE state = 'ready' AND available_at <= ? ORDER BY available_at, seq LIMIT ?) RETURNING id, body`,
    );
    const remove = db.prepare(`DELETE FROM m WHERE state = 'leased' AND id IN (SELECT value FROM json_each(?))`);
    let handled = 0;
    const t = performance.now();
    for (let i = 0; i < count; i += BATCH) {
      insertMany(i);
      const leased = lease.all(Date.now(), BATCH) as Array<{ id: string; body: string }>;
      for (const r of leased) JSON.parse(r.body);
      handled += remove.run(JSON.stringify(leased.map((r) => r.id))).changes;
    }
    return { messagesPerSecond: handled / ((performance.now() - t) / 1000), messages: handled };
  } finally {
    db.close();
  }
}

/** better-sqlite3: one INSERT per commit, each fsynced: what one awaited send at a time can hope for. */
export function rawSqliteSingleCommits(file: string, count: number): Measured {
  const db = sqlite(file);
  try {
    const insert = db.prepare(`INSERT INTO m (id, body, state, available_at) VALUES (?, ?, 'ready', 0)`);
    const t = performance.now();
    for (let i = 0; i < count; i++) insert.run(`m-${i}`, body());
    return { messagesPerSecond: count / ((performance.now() - t) / 1000), messages: count };
  } finally {
    db.close();
  }
}

/** better-sqlite3: rows inserted in transactions of 10,000: how fast a backlog can be written. */
export function rawSqliteBulk(file: string, count: number): Measured {
  const db = sqlite(file);
  try {
    const insert = db.prepare(`INSERT INTO m (id, body, state, available_at) VALUES (?, ?, 'ready', 0)`);
    const insertMany = db.transaction((from: number, n: number) => {
      for (let k = 0; k < n; k++) insert.run(`m-${from + k}`, body());
    });
    const t = performance.now();
    for (let i = 0; i < count; i += 10_000) insertMany(i, Math.min(10_000, count - i));
    return { messagesPerSecond: count / ((performance.now() - t) / 1000), messages: count };
  } finally {
    db.close();
  }
}

async function pgClient(url: string): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  await client.query(`CREATE TABLE m (seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, state TEXT NOT NULL, available_at BIGINT NOT NULL);
                      CREATE INDEX m_ready ON m (state, available_at, seq);`);
  return client;
}

/** pg: insert 100 rows (unnest), lease them (UPDATE … FOR UPDATE SKIP LOCKED … RETURNING) and delete them; three commits per batch. */
export async function rawPgBatches(url: string, count: number): Promise<Measured> {
  const client = await pgClient(url);
  try {
    let handled = 0;
    const t = performance.now();
    for (let i = 0; i < count; i += BATCH) {
      const ids = Array.from({ length: BATCH }, (_, k) => `m-${i + k}`);
      await client.query({
        name: 'insert',
        text: `INSERT INTO m (id, body, state, available_at) SELECT id, body, 'ready', 0 FROM unnest($1::text[], $2::text[]) AS t(id, body)`,
        values: [ids, ids.map(body)],
      });
      const leased = await client.query<{ id: string; body: string }>({
        name: 'lease',
        text: `UPDATE m SET state = 'leased' WHERE seq IN (SELECT seq FROM m WHERE state = 'ready' AND available_at <= $1 ORDER BY available_at, seq LIMIT $2 FOR UPDATE SKIP LOCKED) RETURNING id, body`,
        values: [Date.now(), BATCH],
      });
      for (const r of leased.rows) JSON.parse(r.body);
      const removed = await client.query({
        name: 'delete',
        text: `DELETE FROM m WHERE state = 'leased' AND id = ANY($1::text[])`,
        values: [leased.rows.map((r) => r.id)],
      });
      handled += removed.rowCount ?? 0;
    }
    return { messagesPerSecond: handled / ((performance.now() - t) / 1000), messages: handled };
  } finally {
    await client.end();
  }
}

/** pg: one INSERT per commit on one connection. */
export async function rawPgSingleCommits(url: string, count: number): Promise<Measured> {
  const client = await pgClient(url);
  try {
    const t = performance.now();
    for (let i = 0; i < count; i++) {
      await client.query({ name: 'insert', text: `INSERT INTO m (id, body, state, available_at) VALUES ($1, $2, 'ready', 0)`, values: [`m-${i}`, body()] });
    }
    return { messagesPerSecond: count / ((performance.now() - t) / 1000), messages: count };
  } finally {
    await client.end();
  }
}

/** The baselines' names. */
export const RAW = {
  sqliteBatches: 'raw better-sqlite3, file FULL, batches of 100',
  memoryBatches: 'raw better-sqlite3, :memory:, batches of 100',
  sqliteSingle: 'raw better-sqlite3, file FULL, one insert per commit',
  sqliteBulk: 'raw better-sqlite3, file FULL, inserts in transactions of 10,000',
  pgBatches: 'raw pg, batches of 100',
  pgSingle: 'raw pg, one insert per commit',
} as const;

/** The baselines by name, each run on a fresh file or database of the context. */
export const baselines: Record<string, (ctx: BenchContext) => Promise<Measured>> = {
  [RAW.sqliteBatches]: async (ctx) => rawSqliteBatches(ctx.file('raw'), ctx.counts.batch),
  [RAW.memoryBatches]: async (ctx) => rawSqliteBatches(':memory:', ctx.counts.batch),
  [RAW.sqliteSingle]: async (ctx) => rawSqliteSingleCommits(ctx.file('raw-single'), ctx.counts.single),
  [RAW.sqliteBulk]: async (ctx) => rawSqliteBulk(ctx.file('raw-bulk'), ctx.counts.bulk),
  [RAW.pgBatches]: (ctx) => withDatabase(ctx, (url) => rawPgBatches(url, ctx.counts.batch)),
  [RAW.pgSingle]: (ctx) => withDatabase(ctx, (url) => rawPgSingleCommits(url, ctx.counts.single)),
};

async function withDatabase<T>(ctx: BenchContext, fn: (url: string) => Promise<T>): Promise<T> {
  const db = await ctx.postgres.database('raw');
  try {
    return await fn(db.url);
  } finally {
    await db.drop();
  }
}

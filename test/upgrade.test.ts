import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_SUBSCRIPTION, Tidings, silentLogger, type TopicOptions } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { MIGRATIONS, SCHEMA_VERSION, type SchemaDialect } from '@tidings/adapter-mikro-orm';
import { sqliteDialect, sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresDialect, postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-upgrade-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The schema version before subscriptions: one row per message per topic. */
const BEFORE = 4;

/** A database of the old shape, with rows written as the old code wrote them. */
interface OldDatabase {
  run(sql: string, params?: unknown[]): Promise<Array<Record<string, unknown>>>;
  close(): Promise<void>;
  storage(): StorageAdapter<any>;
}

const backends: Array<[string, SchemaDialect, () => Promise<OldDatabase>]> = [
  [
    'SQLite file',
    sqliteDialect,
    async () => {
      const file = join(dir, `old-${Math.random().toString(36).slice(2)}.db`);
      const db = new Database(file);
      return {
        run: async (sql, params = []) => {
          const stmt = db.prepare(sql);
          return stmt.reader ? (stmt.all(...params) as Array<Record<string, unknown>>) : (stmt.run(...params), []);
        },
        close: async () => void db.close(),
        storage: () => sqliteStorage({ file }),
      };
    },
  ],
  [
    'PostgreSQL',
    postgresDialect,
    async () => {
      const url = await freshPostgresDatabase('upgrade');
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      return {
        run: async (sql, params = []) => {
          let i = 0;
          return (
            await client.query(
              sql.replace(/\?/g, () => `$${++i}`),
              params,
            )
          ).rows;
        },
        close: () => client.end(),
        storage: () => postgresStorage({ url }),
      };
    },
  ],
];

const NOW = Date.now();
const HOUR = 3_600_000;

/** Rows of the old shape, in every state each lifecycle has, as `[topic, id, state, deliveries, availableAt, leaseUntil, lastError]`. */
const ROWS: Array<[string, string, string, number, number, number | null, string | null]> = [
  ['up.amo', 'amo-1', 'stored', 0, NOW - HOUR, null, null],
  ['up.amo', 'amo-2', 'stored', 0, NOW - HOUR, null, null],
  ['up.alo', 'alo-ready', 'acked', 0, NOW - HOUR, null, null],
  ['up.alo', 'alo-backoff', 'acked', 1, NOW + 400, null, 'Error: first try'],
  ['up.alo', 'alo-leased', 'leased', 1, NOW - HOUR, NOW - 1, null],
  ['up.alo', 'alo-dead', 'dead', 5, NOW - HOUR, null, 'Error: declined'],
  ['up.alo.dead', 'alo-dead', 'acked', 0, NOW - HOUR, null, 'Error: declined'],
  ['up.eob', 'eob-ready', 'stored', 0, NOW - HOUR, null, null],
  ['up.eob', 'eob-leased', 'leased', 1, NOW - HOUR, NOW - 1, null],
  ['up.eob', 'eob-done', 'leased', 1, NOW - HOUR, NOW - 1, null],
  ['up.eob', 'eob-consumed', 'consumed', 1, NOW - HOUR, null, null],
  ['up.eob', 'eob-dead', 'dead', 5, NOW - HOUR, null, 'Error: declined'],
  ['up.eoe', 'eoe-ready', 'acked', 0, NOW - HOUR, null, null],
  ['up.eoe', 'eoe-leased', 'leased', 2, NOW - HOUR, NOW - 1, null],
  ['up.legacy', 'legacy-1', 'acked', 0, NOW - HOUR, null, null],
];

/** How each topic was declared; `up.legacy` has rows from before the topic registry and no record. */
const TOPICS: Record<string, TopicOptions> = {
  'up.amo': { semantic: 'at-most-once' },
  'up.alo': { semantic: 'at-least-once', deadLetter: 'up.alo.dead', leaseMs: 200 },
  'up.alo.dead': { semantic: 'at-least-once' },
  'up.eob': { semantic: 'exactly-once', scope: 'broker', leaseMs: 200 },
  'up.eoe': { semantic: 'exactly-once', leaseMs: 200 },
  'up.legacy': { semantic: 'at-least-once' },
};

const LIFECYCLE: Record<string, string> = {
  'up.amo': 'at-most-once',
  'up.alo': 'at-least-once',
  'up.alo.dead': 'at-least-once',
  'up.eob': 'exactly-once/broker',
  'up.eoe': 'exactly-once/end-to-end',
};

async function writeOldDatabase(db: OldDatabase, dialect: SchemaDialect): Promise<void> {
  await db.run(`CREATE TABLE IF NOT EXISTS tidings_meta (key VARCHAR(64) NOT NULL PRIMARY KEY, value VARCHAR(200) NOT NULL)`);
  for (const migration of MIGRATIONS.filter((m) => m.version <= BEFORE)) for (const sql of migration.statements(dialect)) await db.run(sql);
  await db.run(`INSERT INTO tidings_meta (key, value) VALUES ('schema_version', ?)`, [String(BEFORE)]);
  for (const [topic, id, state, deliveries, availableAt, leaseUntil, lastError] of ROWS) {
    await db.run(
      `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      [topic, id, JSON.stringify({ id }), state, deliveries, availableAt, NOW - HOUR, leaseUntil, leaseUntil === null ? null : 'old-lease', lastError],
    );
  }
  for (const [name, lifecycle] of Object.entries(LIFECYCLE)) {
    await db.run(`INSERT INTO tidings_topic (name, lifecycle, dead_letter, max_deliveries, declared_at) VALUES (?, ?, ?, ?, ?)`, [
      name,
      lifecycle,
      name === 'up.alo' ? 'up.alo.dead' : null,
      5,
      NOW - 2 * HOUR,
    ]);
  }
  // End-to-end's dedup window holds an id consumed before the upgrade; broker scope's idempotency store holds one
  // whose consumption committed but whose row stayed leased (a lost commit answer).
  await db.run(`INSERT INTO tidings_dedup (topic, id, expires_at) VALUES ('up.eoe', 'eoe-gone', ?)`, [NOW + HOUR]);
  await db.run(`INSERT INTO tidings_idempotency (topic, id, expires_at) VALUES ('up.eob', 'eob-done', ?)`, [NOW + HOUR]);
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(backends)('an existing database with messages in every state, upgraded to subscriptions, on %s', (_name, dialect, open) => {
  it('keeps every row in the default subscription, records one for every topic, and delivers every message through it', { timeout: 60_000 }, async () => {
    const old = await open();
    await writeOldDatabase(old, dialect);

    const tidings = await Tidings.create({ storage: old.storage(), purgeIntervalMs: 0, logger: silentLogger });
    try {
      // Every row kept, each now the default subscription's copy, in the state it was in.
      const rows = await old.run(`SELECT topic, id, subscription, state, deliveries, last_error FROM tidings_message ORDER BY seq`);
      expect(rows.map((r) => [r.topic, r.id, r.subscription, r.state, Number(r.deliveries), r.last_error])).toEqual(
        ROWS.map(([topic, id, state, deliveries, , , lastError]) => [topic, id, DEFAULT_SUBSCRIPTION, state, deliveries, lastError]),
      );
      expect((await old.run(`SELECT value FROM tidings_meta WHERE key = 'schema_version'`))[0]!.value).toBe(String(SCHEMA_VERSION));
      const subscriptions = await tidings.subscriptions();
      expect(subscriptions.map((s) => `${s.topic}/${s.name}`)).toEqual([...Object.keys(TOPICS)].sort().map((t) => `${t}/${DEFAULT_SUBSCRIPTION}`));
      expect(subscriptions.find((s) => s.topic === 'up.alo')).toMatchObject({ deadLetter: 'up.alo.dead', maxDeliveries: 5 });

      const handled: string[] = [];
      const duplicates: string[] = [];
      tidings.events.on('duplicate', (e) => duplicates.push(`${e.by}:${e.id}`));
      for (const [name, options] of Object.entries(TOPICS)) {
        tidings
          .topic<{ id: string }>(name, options)
          .consume((m) => void handled.push(`${name}:${m.payload.id}:${m.subscription}`), { pollMs: 20, batchSize: 10 });
      }
      expect(await tidings.redrive('up.alo', ['alo-dead'])).toBe(1);
      expect(await tidings.redrive('up.eob')).toBe(1);
      // An id consumed before the upgrade is still a duplicate inside its window; a new send goes to the default subscription.
      expect(await tidings.topic('up.eoe', TOPICS['up.eoe']!).send({ id: 'eoe-gone' }, { id: 'eoe-gone' })).toEqual({ id: 'eoe-gone', duplicate: true });
      await tidings.topic('up.eoe', TOPICS['up.eoe']!).send({ id: 'eoe-new' }, { id: 'eoe-new' });

      const expected = [
        'up.amo:amo-1',
        'up.amo:amo-2',
        'up.alo:alo-ready',
        'up.alo:alo-backoff',
        'up.alo:alo-leased',
        'up.alo:alo-dead',
        'up.alo.dead:alo-dead',
        'up.eob:eob-ready',
        'up.eob:eob-leased',
        'up.eob:eob-dead',
        'up.eoe:eoe-ready',
        'up.eoe:eoe-leased',
        'up.eoe:eoe-new',
        'up.legacy:legacy-1',
      ].map((k) => `${k}:${DEFAULT_SUBSCRIPTION}`);
      await until(
        'every message to be handled',
        async () => handled.length >= expected.length && Object.values(await tidings.counts()).every((c) => Object.keys(c).length === 0),
      );
      expect([...handled].sort()).toEqual([...expected].sort());
      // The consumption that had committed is not run again; the half-consumed row is finished.
      expect(duplicates).toEqual(expect.arrayContaining(['broker:eoe-gone', 'consumer:eob-done']));
      expect(await old.run(`SELECT id FROM tidings_message`)).toEqual([]);
    } finally {
      await tidings.close();
      await old.close();
    }
  });
});

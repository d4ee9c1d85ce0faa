import Database from 'better-sqlite3';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { SqlConnection } from '@tidings/adapter-mikro-orm';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/**
 * The operator's browser pages a queue of any depth: every statement `browse` sends is planned against 20,000 rows
 * and must walk an index. A page of a large state must not sort (it reads the rows in the index's order, so a page of a
 * million-row queue costs what a page of ten does); a look-up by id or key may sort the few rows it found.
 */
const issued: Array<{ sql: string; params: unknown[] }> = [];
let capturing = false;
const exec = SqlConnection.prototype.exec;
SqlConnection.prototype.exec = function (this: SqlConnection, sql: string, params: unknown[], ...rest: [never, never]) {
  if (capturing && /ORDER BY available_at, seq/.test(sql)) issued.push({ sql, params: [...params] });
  return exec.call(this, sql, params, ...rest);
};
const dir = mkdtempSync(join(tmpdir(), 'tidings-browse-plans-'));
afterAll(() => {
  SqlConnection.prototype.exec = exec;
  rmSync(dir, { recursive: true, force: true });
});

/** A node of PostgreSQL's JSON plan. */
interface PgNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Plan Rows': number;
  Plans?: PgNode[];
}

const walk = (node: PgNode): PgNode[] => [node, ...(node.Plans ?? []).flatMap(walk)];

/** What is wrong with a plan, if anything: a full read of the message table, or a sort of a whole state. */
type Planner = (sql: string, params: unknown[]) => Promise<{ scans: boolean; sorts: boolean; text: string }>;

const backends: Array<[string, () => Promise<{ storage: StorageAdapter<any>; planner: Planner; analyze?(): Promise<unknown>; close(): Promise<void> }>]> = [
  [
    'a SQLite file',
    async () => {
      const file = join(dir, 'plans.db');
      let db: Database.Database | undefined;
      return {
        storage: sqliteStorage({ file }),
        planner: async (sql, params) => {
          db ??= new Database(file, { readonly: true });
          const rows = db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>;
          const text = rows.map((r) => r.detail).join('; ');
          return { scans: rows.some((r) => /^SCAN tidings_message\b/.test(r.detail)), sorts: /TEMP B-TREE FOR ORDER BY/.test(text), text };
        },
        close: async () => void db?.close(),
      };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await freshPostgresDatabase('browse');
      const admin = new pg.Client({ connectionString: url });
      await admin.connect();
      let n = 0;
      return {
        storage: postgresStorage({ url }),
        // PostgreSQL plans from statistics: analyzed once the rows are in, as autovacuum would.
        analyze: () => admin.query('ANALYZE'),
        planner: async (sql, params) => {
          const text = sql.replace(/\?/g, () => `$${++n}`);
          n = 0;
          const [row] = (await admin.query(`EXPLAIN (FORMAT JSON) ${text}`, params)).rows as Array<{ 'QUERY PLAN': Array<{ Plan: PgNode }> }>;
          const nodes = walk(row!['QUERY PLAN'][0]!.Plan);
          const plan = JSON.stringify(nodes.map((p) => [p['Node Type'], p['Relation Name'] ?? p['Index Name'], p['Plan Rows']]));
          // The planner sorts a state it expects to be small (a few leases) rather than walk the index: fine. One it
          // expects to hold many rows must come in index order.
          return {
            scans: nodes.some((p) => p['Node Type'] === 'Seq Scan' && p['Relation Name'] === 'tidings_message'),
            sorts: nodes.some((p) => p['Node Type'] === 'Sort' && p['Plan Rows'] > 1_000),
            text: plan,
          };
        },
        close: () => admin.end(),
      };
    },
  ],
];

describe.each(backends)('browsing on %s', (_, open) => {
  it('walks an index for every view, page and look-up; a page of a large state never sorts', async () => {
    const { storage, planner, analyze, close } = await open();
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<number>('orders', { semantic: 'at-least-once', ordering: 'key', maxDeliveries: 1 });
      // 20,000 waiting over 500 keys, 2,000 delayed, leases and dead letters among them; a second topic beside it.
      for (let i = 0; i < 20; i++)
        await topic.sendMany(
          Array.from({ length: 1000 }, (_, j) => i * 1000 + j),
          { key: (p) => `k${p % 500}` },
        );
      await topic.sendMany(
        Array.from({ length: 2000 }, (_, j) => j),
        { delayMs: 3_600_000 },
      );
      await tidings.topic<number>('other', { semantic: 'at-least-once' }).sendMany(Array.from({ length: 5000 }, (_, j) => j));
      const s = topic.subscription('default');
      const until = async (check: (c: Record<string, number | undefined>) => boolean) => {
        while (!check(await s.counts())) await new Promise((r) => setTimeout(r, 20));
      };
      const failing = topic.consume(() => Promise.reject(new Error('declined')), { batchSize: 50, concurrency: 50 });
      await until((c) => (c.dead ?? 0) >= 50);
      await failing.stop();
      const holding = topic.consume(() => new Promise<void>(() => undefined), { batchSize: 100, concurrency: 100 });
      await until((c) => (c.leased ?? 0) >= 100);
      await holding.stop({ graceMs: 0 });
      await analyze?.();

      capturing = true;
      for (const view of ['waiting', 'delayed', 'leased', 'dead'] as const) {
        const first = await s.browse({ view, limit: 20 });
        expect(first.messages.length, view).toBeGreaterThan(0);
        if (first.next) await s.browse({ view, limit: 20, after: first.next });
      }
      const [one] = (await s.browse({ view: 'waiting', limit: 1 })).messages;
      await s.message(one!.id);
      await s.browse({ key: 'k7' });
      await s.browse({ key: 'k7', view: 'waiting' });
      capturing = false;

      expect(issued.length).toBeGreaterThanOrEqual(11);
      const wrong: string[] = [];
      for (const q of issued.splice(0)) {
        const plan = await planner(q.sql, q.params);
        const byState = !/\bid = \?|ordering_key = \?/.test(q.sql);
        if (plan.scans || (byState && plan.sorts)) wrong.push(`${q.sql.replace(/\s+/g, ' ')} → ${plan.text}`);
      }
      expect(wrong).toEqual([]);
    } finally {
      capturing = false;
      await tidings.close();
      await close();
    }
  }, 120_000);
});

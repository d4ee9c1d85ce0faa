import pg from 'pg';
import { afterAll, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/**
 * Every statement an exactly-once consumer sends PostgreSQL, planned against tables of 20,000 rows: none may read a
 * whole table. A plan that scans grows with the table (7 ms a batch at 20,000 consumed ids, where an index probe takes
 * 0.15 ms), which no timing test on a shared machine would see.
 */
const issued: Array<{ text: string; values: unknown[]; name?: string; options?: string }> = [];
let capturing = false;
const query = pg.Client.prototype.query;
(pg.Client.prototype as unknown as { query: (...args: unknown[]) => unknown }).query = function (this: pg.Client, ...args: unknown[]) {
  const [first, second] = args as [string | { text: string; values?: unknown[]; name?: string }, unknown];
  if (capturing) {
    const text = typeof first === 'string' ? first : first.text;
    const values = typeof first === 'string' ? (Array.isArray(second) ? second : []) : (first.values ?? []);
    const options = (this as unknown as { connectionParameters?: { options?: string } }).connectionParameters?.options;
    issued.push({ text, values, name: typeof first === 'string' ? undefined : first.name, options });
  }
  return (query as (...a: unknown[]) => unknown).apply(this, args);
};
afterAll(() => {
  pg.Client.prototype.query = query;
});

/** The relations a plan reads row by row, every one of them. */
function seqScans(plan: { 'Node Type'?: string; 'Relation Name'?: string; Plans?: unknown[] }): string[] {
  const own = plan['Node Type'] === 'Seq Scan' ? [plan['Relation Name'] ?? '?'] : [];
  return [...own, ...(plan.Plans ?? []).flatMap((p) => seqScans(p as typeof plan))];
}

it('an exactly-once consumer on PostgreSQL probes indexes: no statement scans the message or idempotency table', async () => {
  const url = await freshPostgresDatabase('plans');
  const tidings = await Tidings.create({ storage: postgresStorage({ url }), purgeIntervalMs: 0, logger: silentLogger });
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  try {
    const orders = tidings.topic<number>('orders', { semantic: 'exactly-once' });
    const backlog = tidings.topic<number>('backlog', { semantic: 'exactly-once' });
    for (let i = 0; i < 20; i++)
      await backlog.sendMany(
        Array.from({ length: 1000 }, (_, j) => i * 1000 + j),
        { id: (p) => `b${p}` },
      );
    // Ids consumed long ago, under the scope the consumer records into (the default subscription's is the topic's name).
    await admin.query(`INSERT INTO tidings_idempotency (topic, id, expires_at) SELECT 'orders', 'old-' || g, 9e15 FROM generate_series(1, 20000) g`);
    await orders.sendMany(
      Array.from({ length: 300 }, (_, i) => i),
      { id: (p) => `o${p}` },
    );
    await admin.query('ANALYZE');

    capturing = true;
    const handled = new Set<number>();
    const consumer = orders.consume((m) => void handled.add(m.payload), { concurrency: 50, batchSize: 100, pollMs: 10 });
    const deadline = Date.now() + 20_000;
    while ((Object.values((await tidings.counts('orders')).orders ?? {}).reduce((a, b) => a + b, 0) > 0 || handled.size < 300) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await consumer.stop();
    capturing = false;
    expect(handled.size).toBe(300);

    const planned = issued.filter(
      (q) => /tidings_(message|idempotency)/.test(q.text) && /^\s*(\/\*.*?\*\/\s*)?(WITH|SELECT|UPDATE|DELETE|INSERT)/i.test(q.text),
    );
    expect(planned.map((q) => q.text).join('\n')).toMatch(/tidings_idempotency/);
    const scans: string[] = [];
    for (const q of planned) {
      const [row] = (await admin.query(`EXPLAIN (FORMAT JSON) ${q.text}`, q.values)).rows as Array<{
        'QUERY PLAN': Array<{ Plan: Parameters<typeof seqScans>[0] }>;
      }>;
      for (const relation of seqScans(row!['QUERY PLAN'][0]!.Plan))
        if (relation.startsWith('tidings_')) scans.push(`${relation}: ${q.text.replace(/\s+/g, ' ').slice(0, 160)}`);
    }
    expect([...new Set(scans)]).toEqual([]);
    // Prepared once per connection, and planned afresh on each run: a generic plan made while the tables were empty
    // would go on scanning them once they fill up.
    expect(planned.filter((q) => q.name === undefined)).toEqual([]);
    expect(new Set(planned.map((q) => q.options))).toEqual(new Set(['-c plan_cache_mode=force_custom_plan']));
  } finally {
    capturing = false;
    await admin.end();
    await tidings.close();
  }
}, 60_000);

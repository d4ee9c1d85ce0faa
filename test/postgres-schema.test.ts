import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/** The tables of each schema whose name starts with tidings, as `schema.table`. */
async function tidingsTables(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables WHERE table_name LIKE 'tidings_%' ORDER BY 1",
    );
    return rows.map((r: { t: string }) => r.t);
  } finally {
    await client.end();
  }
}

describe("postgresStorage's schema option", () => {
  it("keeps Tidings' tables in a schema of their own, created at start, and delivers through it (wake-ups too)", { timeout: 30_000 }, async () => {
    const url = await freshPostgresDatabase('schema');
    const tidings = await Tidings.create({ storage: postgresStorage({ url, schema: 'queues' }), purgeIntervalMs: 0, logger: silentLogger });
    const topic = tidings.topic<{ n: number }>('orders', { semantic: 'exactly-once' });
    const got: number[] = [];
    // A long poll: the message can only arrive this fast through the listening connection's wake-up.
    const consumer = topic.consume((m) => void got.push(m.payload.n), { pollMs: 60_000 });
    await new Promise((r) => setTimeout(r, 200));
    const sent = performance.now();
    await topic.send({ n: 1 }, { id: 'order-1' });
    while (got.length === 0 && performance.now() - sent < 5_000) await new Promise((r) => setTimeout(r, 5));
    expect(got).toEqual([1]);
    expect(performance.now() - sent).toBeLessThan(2_000);
    await consumer.stop();
    await tidings.close();
    const tables = await tidingsTables(url);
    expect(tables.length).toBeGreaterThanOrEqual(6);
    expect(tables.every((t) => t.startsWith('queues.'))).toBe(true);
  });

  it('refuses a schema name that would need quoting, and a schema beside an application ORM, with INVALID_OPTIONS', () => {
    for (const schema of ['Queues', 'my-queues', 'a; DROP TABLE x', '', 7]) {
      expect(() => postgresStorage({ url: 'postgres://u:p@localhost:5432/db', schema: schema as string }), String(schema)).toThrow(
        expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringMatching(/schema must be a lower-case name of letters, digits and _/) }),
      );
    }
    expect(() => postgresStorage({ orm: {} as never, schema: 'queues' })).toThrow(
      expect.objectContaining({ code: 'INVALID_OPTIONS', message: expect.stringMatching(/set the schema in your MikroORM config/) }),
    );
  });

  it('says which schema it could not create and what to do, for a user without CREATE on the database', { timeout: 30_000 }, async () => {
    const url = await freshPostgresDatabase('schema_denied');
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    const database = new URL(url).pathname.slice(1);
    try {
      await admin.query("DROP ROLE IF EXISTS tidings_limited; CREATE ROLE tidings_limited LOGIN PASSWORD 'limited'");
      await admin.query(`REVOKE CREATE ON DATABASE ${database} FROM PUBLIC`);
    } finally {
      await admin.end();
    }
    const limited = new URL(url);
    limited.username = 'tidings_limited';
    limited.password = 'limited';
    const storage = postgresStorage({ url: limited.toString(), schema: 'queues' });
    await expect(storage.open()).rejects.toMatchObject({
      code: 'STORAGE_ERROR',
      message: expect.stringMatching(/Cannot create schema queues on PostgreSQL at .*permission denied.*Create it, or grant CREATE on the database\./),
    });
  });
});

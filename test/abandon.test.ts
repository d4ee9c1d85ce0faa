import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const dir = mkdtempSync(join(tmpdir(), 'tidings-abandon-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('a handler abandoned at close, on a database with one connection', () => {
  it('lets close({ graceMs }) resolve although an exactly-once handler never returns: its transaction rolls back, its write is discarded, its message comes back', async () => {
    const file = join(dir, 'never.db');
    const first = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    const payments = first.topic<string>('payments', { semantic: 'exactly-once', scope: 'broker', leaseMs: 500 });
    await payments.send('pay-1');
    let started = false;
    // A handler that ignores ctx.signal and never returns, holding the message's transaction open.
    payments.consume(async (_m, ctx) => {
      started = true;
      await (ctx.em as { getConnection(): { execute(sql: string, p: unknown[], m: string, tx: unknown): Promise<unknown> } })
        .getConnection()
        .execute('CREATE TABLE IF NOT EXISTS effects (n INTEGER)', [], 'run', (ctx.em as { getTransactionContext(): unknown }).getTransactionContext());
      await new Promise(() => {});
    });
    while (!started) await new Promise((r) => setTimeout(r, 5));
    const closing = Date.now();
    await first.close({ graceMs: 100 });
    expect(Date.now() - closing).toBeLessThan(3_000);
    const raw = new Database(file, { readonly: true });
    expect(raw.prepare(`SELECT name FROM sqlite_master WHERE name = 'effects'`).all()).toEqual([]);
    raw.close();

    const second = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0, logger: silentLogger });
    const got: string[] = [];
    const consumer = second
      .topic<string>('payments', { semantic: 'exactly-once', scope: 'broker', leaseMs: 500 })
      .consume((m) => void got.push(m.payload), { pollMs: 20 });
    for (let i = 0; i < 200 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(got).toEqual(['pay-1']);
    await consumer.stop();
    expect(Object.keys((await second.counts('payments')).payments ?? {})).toEqual([]);
    await second.close();
  }, 20_000);
});

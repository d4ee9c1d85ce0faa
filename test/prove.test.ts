import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { PROVE_RUNS, type ProveResult } from '@tidings/cli';
import { Tidings } from '@tidings/core';
import { postgresStorage } from '@tidings/adapter-postgres';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { freshPostgresDatabase } from './support/databases.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-prove-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const bin = fileURLToPath(new URL('../plugins/cli/bin/tidings.js', import.meta.url));

/** Runs the built `tidings prove`, as a user would (its workers then start as plain Node); resolves with the exit code and output. */
function prove(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [bin, 'prove', ...args], { cwd: dir, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 280_000 }, (error, out, err) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, out, err }),
    ),
  );
}

/** An application's own database with a message waiting in it: prove must leave it as it was. */
async function applicationDatabase(storage: ReturnType<typeof sqliteStorage>): Promise<void> {
  const tidings = await Tidings.create({ storage });
  await tidings.topic<{ n: number }>('app.orders', { semantic: 'at-least-once' }).send({ n: 1 });
  await tidings.close();
}

const SMALL = ['--messages', '30', '--kills', '1'];

describe('tidings prove', () => {
  it('holds every guarantee on a SQLite file, in a file of its own beside the application database, removed after', { timeout: 300_000 }, async () => {
    const db = join(dir, 'app.db');
    await applicationDatabase(sqliteStorage({ file: db }));
    const before = createHash('sha256').update(readFileSync(db)).digest('hex');
    const r = await prove(['--db', db, ...SMALL, '--seed', '11', '--json']);
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    const result = JSON.parse(r.out) as ProveResult;
    expect(result.held).toBe(true);
    expect(result.rows.map((x) => x.run)).toEqual(PROVE_RUNS.map((x) => x.name));
    for (const row of result.rows) {
      expect(row, row.rule).toMatchObject({ held: true, broken: [] });
      expect(row.kills).toBeGreaterThanOrEqual(1);
      expect(row.stored).toBeGreaterThan(0);
    }
    const byRun = Object.fromEntries(result.rows.map((x) => [x.run, x]));
    // Exactly-once: every acked message consumed once, in key order in both subscriptions.
    for (const name of ['exactly-once/end-to-end', 'exactly-once-ordered', 'exactly-once-batch']) expect(byRun[name]).toMatchObject({ lost: 0, duplicated: 0 });
    expect(byRun['exactly-once-ordered']!.outOfOrder).toBe(0);
    expect(byRun['exactly-once-ordered']!.delivered).toBe(2 * byRun['exactly-once-ordered']!.acked);
    // The application's file was not touched, and the run's own file is gone.
    expect(createHash('sha256').update(readFileSync(db)).digest('hex')).toBe(before);
    expect(readdirSync(dir).filter((f) => f.startsWith('tidings-prove-'))).toEqual([]);
  });

  it('holds every guarantee on PostgreSQL, in a schema of its own, dropped after', { timeout: 300_000 }, async () => {
    const url = await freshPostgresDatabase('prove');
    await applicationDatabase(postgresStorage({ url }) as unknown as ReturnType<typeof sqliteStorage>);
    const r = await prove(['--db', url, ...SMALL, '--seed', '12']);
    expect(r.code, `${r.out}\n${r.err}`).toBe(0);
    // The checker's table and a verdict per run, as a person reads it.
    expect(r.out).toMatch(/^run\s+kills\s+sent\s+acked\s+stored\s+delivered\s+lost\s+duplicated\s+out of order\s+seconds$/m);
    expect(
      r.out
        .split('\n')
        .filter((l) => l.startsWith('✓ held   '))
        .map((l) => l.slice(9).split(/:| \(/)[0]),
    ).toEqual(PROVE_RUNS.map((x) => x.name));
    expect(r.out).not.toContain('BROKEN');
    expect(r.out).toContain('Every guarantee held on this database.');
    expect(r.err).toMatch(/6\/6 exactly-once-batch: held \(\d+ kills/);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const schemas = await client.query("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tidings_prove%'");
      expect(schemas.rows).toEqual([]);
      const app = await client.query("SELECT topic FROM tidings_message WHERE topic LIKE 'prove%' OR topic = 'app.orders'");
      expect(app.rows).toEqual([{ topic: 'app.orders' }]);
    } finally {
      await client.end();
    }
  });

  it('exits 1 and names the lost messages on a storage that loses one message in ten', { timeout: 300_000 }, async () => {
    const r = await prove(['--db', join(dir, 'broken.db'), ...SMALL, '--seed', '13', '--only', 'at-least-once,exactly-once/end-to-end'], {
      TIDINGS_PROVE_BROKEN: 'lose-stored',
    });
    expect(r.code).toBe(1);
    expect(r.out).toMatch(/✗ BROKEN at-least-once: lost of acked = 0 \(got [1-9]/);
    expect(r.out).toMatch(/✗ BROKEN exactly-once\/end-to-end: .*lost of acked = 0 \(got [1-9]/);
    expect(r.out).toMatch(/^\s+stored, never consumed: [1-9]\d* \(k-\d+/m);
    expect(r.out).toContain('A guarantee broke on this database');
  });

  it('refuses bad options with a typed error that says what to pass, before it touches any database', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--lost-acks', '1.5'], /--lost-acks must be a share from 0 up to \(not including\) 1/],
      [['--messages', '5'], /--messages must be an integer from 10 to 100000, got 5/],
      [['--only', 'exactly-twice'], /--only exactly-twice: no such run; the runs are at-most-once, at-least-once/],
      [['--db', join(dir, 'missing', 'app.db')], /no folder .*missing.*create the folder or pass another path/],
      [['--db', 'mysql://localhost/app'], /is not a database tidings can prove on: pass a SQLite file path or a postgres:\/\/ URL/],
      [
        ['--db', 'postgres://app:s3cret@127.0.0.1:1/app'],
        /^tidings: Cannot reach PostgreSQL at postgres:\/\/app:\*\*\*@127\.0\.0\.1:1\/app: .*Check the host, port, credentials and database name\.$/m,
      ],
    ];
    for (const [args, message] of cases) {
      const r = await prove(['--db', join(dir, 'options.db'), ...args]);
      expect(r.code, args.join(' ')).toBe(1);
      expect(r.err, args.join(' ')).toMatch(message);
      expect(r.err).not.toContain('s3cret');
    }
    expect(existsSync(join(dir, 'options.db'))).toBe(false);
  });
});

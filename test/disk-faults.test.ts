import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { StorageError, Tidings, type Logger } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/**
 * A full disk and a read-only file system each have a code of their own (STORAGE_FULL, STORAGE_READ_ONLY), which a
 * send rejects with at once and a consumer logs once per episode: not ACK_TIMEOUT after a second of retries. On real
 * mounts: a tmpfs of 1 MiB, remounted read-only, which needs root (as CI runs); skipped with the reason otherwise.
 */
const dir = mkdtempSync(join(tmpdir(), 'tidings-disk-'));
const mounts: string[] = [];
afterAll(() => {
  // Lazily: a connection a failed open left behind must not keep the mount, and the run, alive.
  for (const m of mounts) execFileSync('umount', ['-l', m], { stdio: 'ignore' });
  rmSync(dir, { recursive: true, force: true });
});

/** A tmpfs of `size` at a new folder, or the reason there cannot be one here. */
function tmpfs(size: string): string | { reason: string } {
  const at = mkdtempSync(join(dir, 'mnt-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', at], { stdio: 'pipe' });
  } catch (error) {
    return {
      reason: `cannot mount a tmpfs here (${String((error as { stderr?: Buffer }).stderr ?? error).trim()}); run as root to test a full disk and a read-only mount`,
    };
  }
  mounts.push(at);
  return at;
}

const probe = tmpfs('64k');
const mountable = typeof probe === 'string';
const skipped = mountable ? '' : ` (skipped: ${(probe as { reason: string }).reason})`;

/** A logger that keeps what it is told. */
function keeping(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, debug() {}, warn: (m) => void lines.push(`warn ${m}`), error: (m) => void lines.push(`error ${m}`) };
}

const pad = 'x'.repeat(8_000);

describe.skipIf(!mountable)(`a SQLite file on a disk that fills up or turns read-only${skipped}`, () => {
  it('rejects sends with STORAGE_FULL once the disk is full, stores again once there is room, and loses nothing acked', { timeout: 60_000 }, async () => {
    const at = tmpfs('1m') as string;
    const logger = keeping();
    const tidings = await Tidings.create({ storage: sqliteStorage({ file: join(at, 'full.db') }), purgeIntervalMs: 0, logger });
    const topic = tidings.topic<{ n: number; pad: string }>('orders', { semantic: 'at-least-once' });
    const acked: number[] = [];
    let error: unknown;
    const started = Date.now();
    for (let n = 0; n < 1_000 && !error; n++) {
      await topic.send({ n, pad }).then(
        () => acked.push(n),
        (e: unknown) => (error = e),
      );
    }
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('STORAGE_FULL');
    expect((error as Error).message).toMatch(/has no disk space left during \w+ \(database or disk is full\); nothing was written\. Free space on its disk/);
    expect(acked.length).toBeGreaterThan(10);
    console.log(`disk full after ${acked.length} sends; the next rejected with STORAGE_FULL (${Date.now() - started} ms for all)`);
    // A consumer polling every 20 ms on the full disk: its leases fail, said once for the whole episode.
    const got = new Set<number>();
    const consumer = topic.consume((m) => void got.add(m.payload.n), { batchSize: 50, pollMs: 20 });
    await new Promise((r) => setTimeout(r, 500));
    expect(logger.lines.filter((l) => l.startsWith('error consumer loop failed'))).toHaveLength(1);
    // Room again: sends go on, the consumer says it recovered, and every acked message is there.
    execFileSync('mount', ['-o', 'remount,size=4m', at]);
    await topic.send({ n: -1, pad });
    while (got.size < acked.length + 1) await new Promise((r) => setTimeout(r, 20));
    await consumer.stop();
    expect(acked.every((n) => got.has(n))).toBe(true);
    expect(logger.lines.filter((l) => l === 'warn consumer loop recovered')).toHaveLength(1);
    await tidings.close();
  });

  it('refuses to open on a read-only mount with STORAGE_READ_ONLY, and opens with every message once it is writable again', { timeout: 60_000 }, async () => {
    const at = tmpfs('4m') as string;
    const path = join(at, 'ro.db');
    const first = await Tidings.create({ storage: sqliteStorage({ file: path }), purgeIntervalMs: 0 });
    await first.topic<{ n: number }>('orders', { semantic: 'at-least-once' }).sendMany([{ n: 1 }, { n: 2 }]);
    await first.close();
    // Linux refuses to remount read-only while a file on it is open for writing: the instance closed first.
    execFileSync('mount', ['-o', 'remount,ro', at]);
    const error = await Tidings.create({ storage: sqliteStorage({ file: path }), purgeIntervalMs: 0 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('STORAGE_READ_ONLY');
    expect((error as Error).message).toMatch(/refuses writes during \w+ .* remount it read-write/);
    execFileSync('mount', ['-o', 'remount,rw', at]);
    const again = await Tidings.create({ storage: sqliteStorage({ file: path }), purgeIntervalMs: 0 });
    expect((await again.topic('orders', { semantic: 'at-least-once' }).subscription('default').counts()).acked).toBe(2);
    await again.close();
  });
});

describe('a PostgreSQL database that refuses writes', () => {
  it('rejects sends with STORAGE_READ_ONLY (a read-only default transaction, as on a standby)', async () => {
    const url = await freshPostgresDatabase('readonly');
    const tidings = await Tidings.create({ storage: postgresStorage({ url }), purgeIntervalMs: 0 });
    const topic = tidings.topic<number>('orders', { semantic: 'at-least-once' });
    await topic.send(1);
    await tidings.close();
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    await admin.query(`ALTER DATABASE ${new URL(url).pathname.slice(1)} SET default_transaction_read_only = on`);
    await admin.end();
    const again = await Tidings.create({ storage: postgresStorage({ url }), purgeIntervalMs: 0 }).catch((e: unknown) => e);
    // Opening checks the schema (a read), then records the declaration (a write) on first use.
    const reopened = again instanceof Tidings ? again : undefined;
    const error = reopened
      ? await reopened
          .topic<number>('orders', { semantic: 'at-least-once' })
          .send(2)
          .catch((e: unknown) => e)
      : again;
    expect(error).toBeInstanceOf(StorageError);
    expect((error as StorageError).code).toBe('STORAGE_READ_ONLY');
    await reopened?.close();
  });
});

// How fast the dashboard answers over a SQLite file of 1,000,000 messages: the overview's sample (every count, the
// oldest waiting message of each subscription, a page of dead letters and leases) and pages of the message browser.
// Run: node --conditions=@tidings/source --import tsx plugins/dashboard/bench/million.ts [messages]
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Tidings, silentLogger } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { createDashboard, type MessagesPage, type Snapshot } from '@tidings/dashboard';

const TOTAL = Number(process.argv[2] ?? 1_000_000);
const RUNS = 7;
const dir = mkdtempSync(join(tmpdir(), 'tidings-dashboard-bench-'));
const file = join(dir, 'tidings.db');

/** The schema and the topics as an application makes them, so the rows below are what Tidings would have written. */
async function declare(): Promise<void> {
  const tidings = await Tidings.create({ storage: sqliteStorage({ file }), logger: silentLogger, purgeIntervalMs: 0 });
  tidings.topic('orders', { semantic: 'at-least-once', deadLetter: 'orders.dead' });
  tidings.topic('clicks', { semantic: 'at-most-once' });
  await tidings.topic('orders', { semantic: 'at-least-once', deadLetter: 'orders.dead' }).send({ n: -1 }, { id: 'warm-up' });
  await tidings.close();
}

/** Raw INSERTs in one transaction: sending a million messages through Tidings would time the producer, not the dashboard. */
function fill(): number {
  const t = performance.now();
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = OFF');
  const insert = db.prepare(
    `INSERT INTO tidings_message (topic, id, body, state, deliveries, available_at, created_at, lease_until, lease_token, last_error, subscription, ordering_key)
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'default', ?)`,
  );
  const now = Date.now();
  db.transaction(() => {
    for (let i = 0; i < TOTAL; i++) {
      const created = now - (TOTAL - i) * 10;
      // Mostly waiting, some delayed, leased and dead, and a few hundred thousand clicks on another topic.
      const r = i % 100;
      const topic = r < 30 ? 'clicks' : 'orders';
      const state = topic === 'clicks' ? 'stored' : r < 95 ? 'acked' : r < 97 ? 'dead' : r < 98 ? 'leased' : 'acked';
      const available = r >= 98 ? now + 3_600_000 : created;
      insert.run(
        topic,
        `m-${i}`,
        JSON.stringify({ n: i, customer: `c-${i % 5000}` }),
        state,
        state === 'dead' ? 5 : state === 'leased' ? 1 : 0,
        available,
        created,
        state === 'leased' ? now + 60_000 : null,
        state === 'leased' ? 'lease-1' : null,
        state === 'dead' ? 'Error: refused\n    at x (y.ts:1:1)' : null,
        `c-${i % 5000}`,
      );
    }
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return performance.now() - t;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timed<T>(what: string, run: () => Promise<T>): Promise<T> {
  const times: number[] = [];
  let last!: T;
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    last = await run();
    times.push(performance.now() - t);
  }
  console.log(
    `${what.padEnd(58)} median ${median(times).toFixed(1).padStart(7)} ms   max ${Math.max(...times)
      .toFixed(1)
      .padStart(7)} ms`,
  );
  return last;
}

async function main(): Promise<void> {
  await declare();
  console.log(`filled ${TOTAL.toLocaleString('en')} messages in ${(fill() / 1000).toFixed(1)} s (${file})`);
  const storage = sqliteStorage({ file });
  await storage.open?.();
  const dashboard = createDashboard({ storage });
  try {
    const { url } = await dashboard.listen();
    const get = async <T>(path: string): Promise<T> => {
      const res = await fetch(new URL(path, url));
      if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };
    await timed('storage.counts() (GROUP BY over every message)', () => storage.counts());
    const samples: number[] = [];
    // A sample is what the overview shows; the monitor takes one each second, GET /api/snapshot hands the last one.
    for (let i = 0; i < RUNS; i++) {
      await new Promise((r) => setTimeout(r, 1_050));
      samples.push((await get<Snapshot>('api/snapshot')).tookMs ?? NaN);
    }
    console.log(
      `${'overview sample (counts, oldest waiting, dead, leases)'.padEnd(58)} median ${median(samples).toFixed(1).padStart(7)} ms   max ${Math.max(...samples)
        .toFixed(1)
        .padStart(7)} ms`,
    );
    await timed('GET /api/snapshot (the overview)', () => get<Snapshot>('api/snapshot'));
    const first = await timed('GET /api/messages waiting, first page of 50', () => get<MessagesPage>('api/messages?topic=orders&view=waiting&limit=50'));
    let page = first;
    for (let i = 0; i < 100 && page.next; i++)
      page = await get<MessagesPage>(`api/messages?topic=orders&view=waiting&limit=50&after=${encodeURIComponent(page.next)}`);
    await timed('GET /api/messages waiting, page 102 (by cursor)', () =>
      get<MessagesPage>(`api/messages?topic=orders&view=waiting&limit=50&after=${encodeURIComponent(page.next!)}`),
    );
    await timed('GET /api/messages delayed, first page of 50', () => get<MessagesPage>('api/messages?topic=orders&view=delayed&limit=50'));
    await timed('GET /api/messages dead, first page of 50', () => get<MessagesPage>('api/messages?topic=orders&view=dead&limit=50'));
    await timed('GET /api/messages leased, first page of 50', () => get<MessagesPage>('api/messages?topic=orders&view=leased&limit=50'));
    await timed('GET /api/messages by key (c-42)', () => get<MessagesPage>('api/messages?topic=orders&key=c-42&limit=50'));
    await timed('GET /api/messages by id', () => get<MessagesPage>(`api/messages?topic=orders&id=m-${Math.floor(TOTAL / 2) + 31}`));
    await timed('GET /api/message (one message)', () => get(`api/message?topic=orders&id=m-${Math.floor(TOTAL / 2) + 31}`));
  } finally {
    await dashboard.close();
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();

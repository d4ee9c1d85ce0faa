// npm run bench: messages/s per configuration, as ratios against raw SQLite run in this same process.
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { transition } from 'xstate';
import { Tidings, lifecycleMachines, lifecycleTables, type StorageAdapter, type Topic, type TidingsPlugin, type TopicOptions } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { startLocalPostgres } from '@tidings/example-multi-node';

const args = process.argv.slice(2);
const N = Number(args[args.indexOf('--messages') + 1]) || 50_000;
const BATCH = 1000;
const PAYLOAD = { body: 'x'.repeat(240) }; // ~256 bytes serialized
const dir = mkdtempSync(join(tmpdir(), 'tidings-bench-'));

interface Row {
  name: string;
  perSecond: number;
  note?: string;
  /** Latency percentiles in ms, where the row measures them. */
  latencyMs?: { p50: number; p99: number; p999: number };
}

/** The p50, p99 and p99.9 of a sample, in ms. */
function percentiles(samples: number[]): { p50: number; p99: number; p999: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! * 100) / 100;
  return { p50: at(0.5), p99: at(0.99), p999: at(0.999) };
}

/** One awaited send at a time, as an HTTP handler sends: sends per second and each send's latency. */
async function singleSends(storage: StorageAdapter<any>, options: TopicOptions, count = 1_000): Promise<Row> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
  const topic = tidings.topic<typeof PAYLOAD>(`bench.${Math.random().toString(36).slice(2)}`, options);
  const spent: number[] = [];
  const t = performance.now();
  for (let i = 0; i < count; i++) {
    const s = performance.now();
    await topic.send(PAYLOAD, options.semantic === 'exactly-once' ? { id: `s-${i}` } : {});
    spent.push(performance.now() - s);
  }
  const perSecond = count / ((performance.now() - t) / 1000);
  await tidings.close();
  return { name: '', perSecond, latencyMs: percentiles(spent) };
}

/** Sends `rate` messages a second for `seconds` (one every `1000 / rate` ms, catching up after a late tick), each stamped with its due time. */
async function sendAtRate(topic: Topic<{ at: number }, any>, options: TopicOptions, rate: number, seconds: number, clock: () => number): Promise<void> {
  const start = clock();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < rate * seconds; i++) {
    const due = start + (i * 1000) / rate;
    const ahead = due - clock();
    if (ahead > 1) await new Promise((r) => setTimeout(r, ahead));
    sends.push(topic.send({ at: due }, options.semantic === 'exactly-once' ? { id: `r-${i}` } : {}));
  }
  await Promise.all(sends);
}

/** Sends at a fixed rate to an in-process consumer: send to handler start. */
async function fixedRate(storage: StorageAdapter<any>, options: TopicOptions, rate = 1_000, seconds = 3): Promise<Row> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
  const topic = tidings.topic<{ at: number }>(`bench.${Math.random().toString(36).slice(2)}`, options);
  const waits: number[] = [];
  const total = rate * seconds;
  const consumer = topic.consume((m) => void waits.push(performance.now() - m.payload.at), { batchSize: 100, concurrency: 50, pollMs: 100 });
  const start = performance.now();
  await sendAtRate(topic, options, rate, seconds, () => performance.now());
  const deadline = Date.now() + 30_000;
  while (waits.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const perSecond = waits.length / ((performance.now() - start) / 1000);
  await consumer.stop();
  await tidings.close();
  return { name: '', perSecond, latencyMs: percentiles(waits), note: `${waits.length} of ${total} handled` };
}

/**
 * The same to a consumer in another process sharing the SQLite file (bench/remote-consumer.ts, pollMs 100):
 * what wakes it is the storage's `watch`, or else its poll.
 */
async function fixedRateRemote(file: string, rate = 1_000, seconds = 3): Promise<Row> {
  const options: TopicOptions = { semantic: 'at-least-once' };
  const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0 });
  const name = `bench.${Math.random().toString(36).slice(2)}`;
  const topic = tidings.topic<{ at: number }>(name, options);
  await topic.ready();
  const child = spawn(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', fileURLToPath(new URL('./remote-consumer.ts', import.meta.url)), file, name, '100'], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  const waits: number[] = [];
  let ready!: () => void;
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  createInterface({ input: child.stdout }).on('line', (line) => (line === 'ready' ? ready() : waits.push(Number(line))));
  await isReady;
  await new Promise((r) => setTimeout(r, 300));
  const total = rate * seconds;
  const start = performance.now();
  await sendAtRate(topic, options, rate, seconds, () => performance.timeOrigin + performance.now());
  const deadline = Date.now() + 30_000;
  while (waits.length < total && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const perSecond = waits.length / ((performance.now() - start) / 1000);
  child.stdin.end();
  await exited;
  await tidings.close();
  return { name: '', perSecond, latencyMs: percentiles(waits), note: `${waits.length} of ${total} handled` };
}
const rows: Row[] = [];

/** Raw better-sqlite3: insert, lease (UPDATE … RETURNING) and delete in batches; the ceiling for SQLite. */
function rawSqlite(file: string): number {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(`CREATE TABLE m (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, body TEXT NOT NULL, state TEXT NOT NULL, available_at INTEGER NOT NULL);
           CREATE INDEX m_ready ON m (state, available_at, seq);`);
  const insert = db.prepare('INSERT INTO m (id, body, state, available_at) VALUES (?, ?, ?, ?)');
  const insertMany = db.transaction((ids: string[]) => {
    for (const id of ids) insert.run(id, JSON.stringify(PAYLOAD), 'acked', 0);
  });
  const lease = db.prepare(`UPDATE m SET state = 'leased' WHERE seq IN (SELECT seq FROM m WHERE state = 'acked' AND available_at <= ? ORDER BY available_at, seq LIMIT ?) RETURNING id, body`);
  const del = db.prepare(`DELETE FROM m WHERE state = 'leased' AND id IN (SELECT value FROM json_each(?))`);
  const t = performance.now();
  for (let i = 0; i < N; i += BATCH) {
    insertMany(Array.from({ length: BATCH }, (_, k) => `m-${i + k}`));
    const leased = lease.all(1, BATCH) as Array<{ id: string; body: string }>;
    for (const r of leased) JSON.parse(r.body);
    del.run(JSON.stringify(leased.map((r) => r.id)));
  }
  const s = (performance.now() - t) / 1000;
  db.close();
  return N / s;
}

/** One producer sending batches of 1,000 while one consumer leases batches of 1,000: end to end. */
async function endToEnd(storage: StorageAdapter<any>, options: TopicOptions, count = N, consume = { batchSize: BATCH, concurrency: 1 }, plugins: TidingsPlugin[] = []): Promise<number> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, plugins });
  const topic = tidings.topic<typeof PAYLOAD>(`bench.${Math.random().toString(36).slice(2)}`, options);
  let consumed = 0;
  const t = performance.now();
  const consumer = topic.consume(() => void consumed++, consume);
  const e2e = options.semantic === 'exactly-once';
  for (let i = 0; i < count; i += BATCH) {
    await topic.sendMany(Array.from({ length: Math.min(BATCH, count - i) }, () => PAYLOAD), e2e ? { id: (_p, k) => `m-${i + k}` } : {});
  }
  while (consumed < count) await new Promise((r) => setTimeout(r, 1));
  const s = (performance.now() - t) / 1000;
  await consumer.stop();
  await tidings.close();
  return count / s;
}

function perOp(fn: () => void, n = 100_000): number {
  for (let i = 0; i < 1000; i++) fn();
  const t = performance.now();
  for (let i = 0; i < n; i++) fn();
  return ((performance.now() - t) * 1000) / n; // µs
}

const bar = (done: number, total: number, label: string) =>
  process.stderr.write(`\r[${'#'.repeat(Math.round((done / total) * 20)).padEnd(20)}] ${done}/${total} ${label.padEnd(48)}`);

const steps: Array<[string, () => Promise<Row>]> = [
  ['raw SQLite, in memory (baseline)', async () => ({ name: 'raw better-sqlite3, :memory:', perSecond: rawSqlite(':memory:') })],
  ['raw SQLite, WAL file, synchronous=FULL', async () => ({ name: 'raw better-sqlite3, file, FULL', perSecond: rawSqlite(join(dir, 'raw.db')) })],
  ['Tidings at-least-once, memory', async () => ({ name: 'at-least-once, memory', perSecond: await endToEnd(memoryStorage(), { semantic: 'at-least-once' }) })],
  [
    'Tidings at-least-once, memory, a pass-through plugin',
    async () => ({
      name: 'at-least-once, memory, 1 plugin',
      perSecond: await endToEnd(memoryStorage(), { semantic: 'at-least-once' }, N, { batchSize: BATCH, concurrency: 1 }, [{ name: 'pass', send: (_c, next) => next(), handle: (_c, next) => next() }]),
      note: 'send and handle wrapped; compare with the row above',
    }),
  ],
  ['Tidings at-most-once, memory', async () => ({ name: 'at-most-once, memory', perSecond: await endToEnd(memoryStorage(), { semantic: 'at-most-once' }) })],
  ['Tidings at-least-once, SQLite file', async () => ({ name: 'at-least-once, SQLite file, FULL', perSecond: await endToEnd(sqliteStorage({ file: join(dir, 'alo.db') }), { semantic: 'at-least-once' }) })],
  ['Tidings at-most-once, SQLite file', async () => ({ name: 'at-most-once, SQLite file, FULL', perSecond: await endToEnd(sqliteStorage({ file: join(dir, 'amo.db') }), { semantic: 'at-most-once' }) })],
  [
    'Tidings exactly-once, SQLite file',
    async () => ({
      name: 'exactly-once e2e, SQLite file, FULL',
      perSecond: await endToEnd(sqliteStorage({ file: join(dir, 'eo.db') }), { semantic: 'exactly-once' }, N, { batchSize: BATCH, concurrency: 2 }),
      note: 'transactional inbox: one transaction per group of handlers',
    }),
  ],
  [
    'Tidings at-least-once, SQLite file, batches of 100, concurrency 50',
    async () => ({
      name: 'at-least-once, SQLite, 100 / c50',
      perSecond: await endToEnd(sqliteStorage({ file: join(dir, 'alo-100.db') }), { semantic: 'at-least-once' }, N, { batchSize: 100, concurrency: 50 }),
    }),
  ],
  [
    'Tidings exactly-once, SQLite file, batches of 100, concurrency 50',
    async () => ({
      name: 'exactly-once e2e, SQLite, 100 / c50',
      perSecond: await endToEnd(sqliteStorage({ file: join(dir, 'eo-100.db') }), { semantic: 'exactly-once' }, N, { batchSize: 100, concurrency: 50 }),
    }),
  ],
  ['Tidings at-least-once, SQLite file, one awaited send at a time', async () => ({ ...(await singleSends(sqliteStorage({ file: join(dir, 'single.db') }), { semantic: 'at-least-once' })), name: 'single awaited sends, SQLite (send latency)' })],
  ['Tidings at-least-once, SQLite file, 1,000 sends/s', async () => ({ ...(await fixedRate(sqliteStorage({ file: join(dir, 'rate.db') }), { semantic: 'at-least-once' })), name: '1,000/s fixed rate, SQLite (send→handler)' })],
  [
    'Tidings at-least-once, SQLite file, 1,000 sends/s to a consumer in another process',
    async () => ({ ...(await fixedRateRemote(join(dir, 'rate-remote.db'))), name: '1,000/s to another process, SQLite (send→handler)' }),
  ],
  [
    'Tidings at-least-once, PostgreSQL',
    async () => {
      // A server of its own, so its empty `postgres` database is the bench's.
      const pg = await startLocalPostgres();
      try {
        return { name: 'at-least-once, PostgreSQL (embedded)', perSecond: await endToEnd(postgresStorage({ url: pg.url }), { semantic: 'at-least-once' }) };
      } finally {
        await pg.stop();
      }
    },
  ],
];

// `--only WORD` runs the baseline and the configurations whose label contains WORD.
const only = args.includes('--only') ? args[args.indexOf('--only') + 1]!.toLowerCase() : undefined;
const chosen = steps.filter(([label], i) => i === 0 || !only || label.toLowerCase().includes(only));
for (const [i, [label, run]] of chosen.entries()) {
  bar(i, chosen.length, label);
  rows.push(await run());
}
bar(chosen.length, chosen.length, 'done');
process.stderr.write('\n');

const baseline = rows[0]!.perSecond;
const table = lifecycleTables['at-least-once'];
const machine = lifecycleMachines['at-least-once'];
const leased = machine.resolveState({ value: 'leased', context: {} });
/** Each SQLite storage step on its own, in µs per message, batches of 1,000 (the at-least-once path). */
async function storageSteps(): Promise<Record<string, number>> {
  const storage = sqliteStorage({ file: join(dir, 'steps.db') });
  await storage.open();
  const spent = { store: 0, lease: 0, settle: 0 };
  const rounds = 10;
  for (let r = 0; r < rounds; r++) {
    const messages = Array.from({ length: BATCH }, (_, k) => ({ id: `s-${r}-${k}`, body: JSON.stringify(PAYLOAD), availableAt: 0 }));
    let t = performance.now();
    await storage.store({ topic: 'steps', state: 'acked', messages, now: 0 });
    spent.store += performance.now() - t;
    t = performance.now();
    const leased = await storage.lease({ topic: 'steps', from: 'acked', to: 'leased', limit: BATCH, now: 0, leaseUntil: 1, leaseToken: `t-${r}`, remove: false });
    spent.lease += performance.now() - t;
    t = performance.now();
    await storage.settle({ topic: 'steps', from: 'leased', to: 'deleted', items: leased, remove: true, now: 0 });
    spent.settle += performance.now() - t;
  }
  await storage.close();
  const perMessage = (ms: number) => (ms * 1000) / (rounds * BATCH);
  return { 'SQLite store (INSERT … SELECT json_each)': perMessage(spent.store), 'SQLite lease (UPDATE … RETURNING)': perMessage(spent.lease), 'SQLite settle (DELETE … json_each)': perMessage(spent.settle) };
}

const costs = {
  'table.next(leased, CONSUME)': perOp(() => table.next('leased', 'CONSUME')),
  'xstate transition(leased, CONSUME)': perOp(() => transition(machine, leased, { type: 'CONSUME' }), 20_000),
  'JSON.stringify 256-byte payload': perOp(() => JSON.stringify(PAYLOAD)),
  ...(await storageSteps()),
};

rmSync(dir, { recursive: true, force: true });

if (args.includes('--json')) {
  console.log(JSON.stringify({ messages: N, batch: BATCH, rows: rows.map((r) => ({ ...r, ratio: r.perSecond / baseline })), costsMicroseconds: costs }, null, 2));
} else {
  console.log(`\n${N} messages of ~256 bytes, batches of ${BATCH}; ratio = messages/s ÷ raw SQLite in memory, same process\n`);
  console.log(`${'configuration'.padEnd(44)} ${'messages/s'.padStart(12)} ${'ratio'.padStart(7)}`);
  for (const r of rows) {
    const latency = r.latencyMs ? `  p50 ${r.latencyMs.p50} ms, p99 ${r.latencyMs.p99} ms, p99.9 ${r.latencyMs.p999} ms` : '';
    console.log(`${r.name.padEnd(44)} ${Math.round(r.perSecond).toLocaleString('en').padStart(12)} ${(r.perSecond / baseline).toFixed(3).padStart(7)}${latency}${r.note ? `  (${r.note})` : ''}`);
  }
  console.log('\nper-message cost of each step (µs):');
  for (const [k, v] of Object.entries(costs)) console.log(`  ${k.padEnd(40)} ${v.toFixed(3)}`);
}

// Quick A/B of the SQLite drivers in one process, rounds alternating.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tidings, type Semantic } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
const dir = mkdtempSync(join(tmpdir(), 'ab-'));
const N = Number(process.argv[2] ?? 20000);
const PAYLOAD = { body: 'x'.repeat(240) };
async function run(driver: 'better-sqlite3' | 'sqlite3', semantic: Semantic, c: number) {
  const tidings = await Tidings.create({ storage: sqliteStorage({ file: join(dir, `${driver}-${Math.random()}.db`), driver }), purgeIntervalMs: 0 });
  const topic = tidings.topic<typeof PAYLOAD>('ab', { semantic });
  let n = 0;
  const t = performance.now();
  const consumer = topic.consume(() => void n++, { batchSize: 100, concurrency: c });
  for (let i = 0; i < N; i += 100) await topic.sendMany(Array.from({ length: 100 }, () => PAYLOAD), semantic === 'exactly-once' ? { id: (_p, k) => `m-${i + k}` } : {});
  while (n < N) await new Promise((r) => setTimeout(r, 1));
  const rate = N / ((performance.now() - t) / 1000);
  await consumer.stop();
  await tidings.close();
  return rate;
}
for (const semantic of (process.argv[3] ?? 'at-least-once,exactly-once').split(',') as Semantic[]) {
  for (let r = 0; r < 3; r++) {
    const out: string[] = [];
    for (const d of (process.env.AB_DRIVERS ?? "better-sqlite3,sqlite3").split(",") as Array<"better-sqlite3" | "sqlite3">) out.push(`${d} ${Math.round(await run(d, semantic, 50))}`);
    console.log(semantic, 'c50', out.join('  '));
  }
}

// Sends and consumes on an at-least-once topic in a SQLite file until killed,
// printing "acked <id>" once the broker acked a send, "handled <id>" when the handler ran and "deleted <id>" once deleted.
import { Tidings } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const [file, prefix] = process.argv.slice(2) as [string, string];
const tidings = await Tidings.create({ storage: sqliteStorage({ file }) });
const topic = tidings.topic<{ n: number }>('crash', { semantic: 'at-least-once', leaseMs: 500 });
const out = (line: string) => process.stdout.write(`${line}\n`);
tidings.events.on('transition', (e) => e.to === 'deleted' && out(`deleted ${e.id}`));
// A handled message counts as consumed even if the kill lands between its delete and the line below.
topic.consume((m) => void out(`handled ${m.id}`), { batchSize: 20 });
out('ready');
for (let n = 0; ; n++) {
  const batch = Array.from({ length: 1 + (n % 5) }, (_, i) => ({ n: n * 10 + i }));
  const acks = await topic.sendMany(batch, { id: (p) => `${prefix}-${p.n}` });
  for (const a of acks) out(`acked ${a.id}`);
}

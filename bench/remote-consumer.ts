// The consumer of the bench's cross-process row, in a process of its own: consumes an at-least-once topic of a
// SQLite file, prints "ready" once leasing, then one line per message with its send→handler-start wait in ms
// (both processes stamp with performance.timeOrigin + performance.now()); closes when its stdin ends.
import { Tidings } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const [file, name, pollMs] = process.argv.slice(2) as [string, string, string];
const now = () => performance.timeOrigin + performance.now();
const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0 });
const topic = tidings.topic<{ at: number }>(name, { semantic: 'at-least-once' });
await topic.ready();
let lines: string[] = [];
const flush = () => {
  if (lines.length > 0) process.stdout.write(`${lines.join('\n')}\n`);
  lines = [];
};
const flushing = setInterval(flush, 50);
topic.consume((m) => void lines.push(String(now() - m.payload.at)), { batchSize: 100, concurrency: 50, pollMs: Number(pollMs) });
process.stdout.write('ready\n');
process.stdin.resume();
process.stdin.on('end', () => {
  clearInterval(flushing);
  void tidings.close().then(flush);
});

// Runs the built packages (dist/, as a deployed process would) on a SQLite file: sends and consumes on an
// at-least-once topic and an end-to-end exactly-once topic until its stdin closes, then drains both and exits 0.
// Prints "acked <topic> <id>" once a send is acknowledged, "handled <topic> <id>" when a handler ran, and
// "error <text>" for any failure, so the parent can check every promise made.
import { Tidings } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';

const [file] = process.argv.slice(2);
const out = (line) => process.stdout.write(`${line}\n`);
const fail = (what, error) => out(`error ${what}: ${String(error?.stack ?? error).replace(/\n/g, ' | ')}`);
process.on('unhandledRejection', (error) => fail('unhandled', error));

const tidings = await Tidings.create({ storage: sqliteStorage({ file }), purgeIntervalMs: 0 });
tidings.events.on('error', (e) => fail('background', e.error));
tidings.events.on('handlerError', (e) => fail('handler', e.error));
const atLeastOnce = tidings.topic('load.alo', { semantic: 'at-least-once', leaseMs: 2_000 });
const exactlyOnce = tidings.topic('load.eo', { semantic: 'exactly-once', leaseMs: 2_000 });
const consumers = [
  atLeastOnce.consume((m) => void out(`handled load.alo ${m.id}`), { batchSize: 10, pollMs: 10 }),
  exactlyOnce.consume(
    async (m, ctx) => {
      // The effect commits with the consumption, so the parent counts effects, not deliveries.
      await ctx.em.getConnection().execute('INSERT INTO load_effects (id) VALUES (?)', [m.id], 'run', ctx.em.getTransactionContext());
    },
    { batchSize: 10, pollMs: 10 },
  ),
];

let stopping = false;
process.stdin.on('end', () => (stopping = true));
process.stdin.resume();
out('ready');
for (let n = 0; !stopping; n++) {
  const topic = n % 2 === 0 ? atLeastOnce : exactlyOnce;
  const batch = Array.from({ length: 1 + (n % 4) }, (_, i) => ({ n: n * 10 + i }));
  try {
    const acks = await topic.sendMany(batch, { id: (p) => `${topic.name}-${p.n}` });
    for (const a of acks) out(`acked ${topic.name} ${a.id}`);
  } catch (error) {
    fail('send', error);
  }
}

// Drained once neither topic holds a message, whatever state it would be in.
const deadline = Date.now() + 10_000;
for (;;) {
  const counts = await tidings.counts();
  if (Object.keys(counts['load.alo'] ?? {}).length === 0 && Object.keys(counts['load.eo'] ?? {}).length === 0) break;
  if (Date.now() > deadline) {
    fail('drain', JSON.stringify(counts));
    break;
  }
  await new Promise((r) => setTimeout(r, 20));
}
await Promise.all(consumers.map((c) => c.stop()));
await tidings.close();
out('done');

// One producer or consumer incarnation of a crash test: runs until it finishes or is SIGKILLed.
// TIDINGS_TRACE=<folder> writes every transition, duplicate and error of each process there, to replay a failure.
// A producer prints "sent <key>" before and "acked <key>" after each send; consumers record every
// effect in the crash_effects table (exactly-once: inside the message's transaction).
import { parseArgs } from 'node:util';
import { Tidings, type TopicOptions } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import type { MikroOrmStorage } from '@tidings/adapter-mikro-orm';
import type { EntityManager } from '@mikro-orm/knex';
import { withFaults, type CrashPoint } from '@tidings/faults';

const { values: a } = parseArgs({
  options: {
    db: { type: 'string' },
    topic: { type: 'string' },
    config: { type: 'string' },
    role: { type: 'string' },
    from: { type: 'string', default: '0' },
    to: { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    incarnation: { type: 'string', default: '0' },
    'lost-acks': { type: 'string', default: '0' },
    'crash-rate': { type: 'string', default: '0' },
    'lease-ms': { type: 'string', default: '300' },
    drain: { type: 'boolean', default: false },
  },
});

/** The topic options of each configuration a crash test runs. */
export const CONFIGS: Record<string, TopicOptions> = {
  'at-most-once': { semantic: 'at-most-once' },
  'at-least-once': { semantic: 'at-least-once' },
  'exactly-once/broker': { semantic: 'exactly-once', scope: 'broker' },
  'exactly-once/end-to-end': { semantic: 'exactly-once', scope: 'end-to-end' },
};

const config = a.config!;
const options: TopicOptions = { ...CONFIGS[config]!, leaseMs: Number(a['lease-ms']), maxDeliveries: 1_000, backoff: { initialMs: 10, maxMs: 50 }, ackTimeoutMs: 2_000, retry: { attempts: 1_000, initialMs: 5, maxMs: 50 } };
const inner: MikroOrmStorage = a.db!.startsWith('postgres') ? postgresStorage({ url: a.db! }) : sqliteStorage({ file: a.db! });
const seed = Number(a.seed);
const crashRate = Number(a['crash-rate']);
const crash: Partial<Record<CrashPoint, number>> =
  a.role === 'consumer' && crashRate > 0
    ? { 'after-lease-before-handler': crashRate, 'after-handler-before-ack': crashRate, 'after-consume-before-delete': crashRate }
    : a.role === 'producer' && crashRate > 0
      ? { 'after-store-before-ack': crashRate }
      : {};
const storage = withFaults(inner, { seed, lostAckRate: a.role === 'producer' ? Number(a['lost-acks']) : 0, crash });
const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
const topic = tidings.topic<{ key: string }>(a.topic!, options);
const out = (line: string) => process.stdout.write(`${line}\n`);
if (process.env.TIDINGS_TRACE) {
  const { appendFileSync } = await import('node:fs');
  const log = (line: string) => appendFileSync(`${process.env.TIDINGS_TRACE}/${a.role}-${a.incarnation}-${process.pid}.log`, `${Date.now()} ${line}\n`);
  tidings.events.on('transition', (e) => log(`${e.id} ${e.from}-${e.event}->${e.to}`));
  tidings.events.on('duplicate', (e) => log(`${e.id} duplicate by ${e.by}`));
  tidings.events.on('error', (e) => log(`error ${String((e.error as Error)?.message ?? e.error)}`));
  tidings.events.on('handlerError', (e) => log(`${e.id} handlerError ${String((e.error as Error)?.message ?? e.error)}`));
}
const exactlyOnce = options.semantic === 'exactly-once';

if (a.role === 'producer') {
  for (let n = Number(a.from); n < Number(a.to); n++) {
    const key = `k-${n}`;
    out(`sent ${key}`);
    try {
      const ack = await topic.send({ key }, exactlyOnce ? { id: key } : {});
      if (options.semantic !== 'at-most-once') out(`acked ${key} ${ack.id}`);
    } catch (error) {
      // Broker scope does not retry: a lost ack is the application's to live with (the message may be stored).
      if ((error as { code?: string }).code !== 'ACK_LOST') throw error;
    }
  }
  out('done');
  await tidings.close();
} else {
  const incarnation = Number(a.incarnation);
  const insert = 'INSERT INTO crash_effects (topic, msg_key, incarnation) VALUES (?, ?, ?)';
  topic.consume(
    async (m, ctx) => {
      out(`handling ${m.payload.key}`);
      const em = (ctx.em as EntityManager | undefined) ?? (inner.orm.em as EntityManager);
      // Exactly-once writes the effect in the message's transaction; the others write it on their own, then ack.
      await em.getConnection().execute(insert, [a.topic, m.payload.key, incarnation], 'run', ctx.em ? (ctx.em as EntityManager).getTransactionContext() : undefined);
    },
    { batchSize: 10, concurrency: 2, pollMs: 20 },
  );
  out('consuming');
  if (a.drain) {
    // Done once nothing is waiting, leased or half-consumed for a few checks in a row.
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setTimeout(r, Math.min(Number(a['lease-ms']), 200)));
      const c = (await tidings.counts(a.topic!))[a.topic!] ?? {};
      quiet = (c.acked ?? 0) + (c.stored ?? 0) + (c.leased ?? 0) + (c.consumed ?? 0) === 0 ? quiet + 1 : 0;
    }
    await tidings.close();
    out('drained');
    process.exit(0);
  }
}

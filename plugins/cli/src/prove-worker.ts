// One producer or consumer incarnation of a crash run (`tidings prove`, the crash tests): runs until it finishes or is
// SIGKILLed. A producer prints "sent <key>" before and "acked <key>" after each send; consumers record every effect in
// the prove_effects table (exactly-once: inside the message's transaction).
// TIDINGS_TRACE=<folder> writes every transition, duplicate and error of each process there, to replay a failure.
// TIDINGS_PROVE_BROKEN runs the workers on a deliberately broken broker, to show the checks catch it:
//   ignore-keys   leases ignore ordering keys (ordered runs must report messages out of order);
//   lose-stored   every tenth message a producer stores is acked but deleted at once (durable runs must report it lost).
import { appendFileSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { LIFECYCLES, semanticOf, Tidings, type ConsumeContext, type Message, type TopicOptions } from '@tidings/core';
import { decorateStorage, type LeaseRequest, type StorageAdapter, type StoreRequest } from '@tidings/core/adapter';
import type { MikroOrmStorage } from '@tidings/adapter-sqlite';
import type { EntityManager } from '@mikro-orm/knex';
import { withFaults, type CrashPoint } from '@tidings/faults';
import { targetStorage } from './prove-scenario.js';

const { values: a } = parseArgs({
  options: {
    db: { type: 'string' },
    schema: { type: 'string' },
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
    'kill-holding': { type: 'string', default: '0' },
    // An ordered topic: the subscriptions it is declared with, and the one this consumer reads.
    subscriptions: { type: 'string' },
    subscription: { type: 'string' },
    ordered: { type: 'boolean', default: false },
    // Consume with a batch handler: one call per leased batch, its effects in the batch's transaction.
    batch: { type: 'boolean', default: false },
  },
});

/** How many ordering keys an ordered run spreads its messages over: message n has key g(n mod GROUPS). */
const GROUPS = 10;

/** The topic options of each configuration a crash test runs. */
const CONFIGS: Record<string, TopicOptions> = Object.fromEntries(LIFECYCLES.map((l) => [l, semanticOf(l)]));

// A worker whose test runner died would run on forever: its standard input closing says the parent is gone.
process.stdin.on('end', () => process.exit(2)).resume();

const config = a.config!;
const options: TopicOptions = {
  ...CONFIGS[config]!,
  leaseMs: Number(a['lease-ms']),
  maxDeliveries: 1_000,
  backoff: { initialMs: 10, maxMs: 50 },
  ackTimeoutMs: 2_000,
  retry: { attempts: 1_000, initialMs: 5, maxMs: 50 },
  ...(a.ordered ? { ordering: 'key' as const } : {}),
  ...(a.subscriptions ? { subscriptions: a.subscriptions.split(',') } : {}),
};
const inner: MikroOrmStorage = targetStorage({ db: a.db!, schema: a.schema });
const seed = Number(a.seed);
const crashRate = Number(a['crash-rate']);
const crash: Partial<Record<CrashPoint, number>> =
  a.role === 'consumer' && crashRate > 0
    ? { 'after-lease-before-handler': crashRate, 'after-handler-before-ack': crashRate }
    : a.role === 'producer' && crashRate > 0
      ? { 'after-store-before-ack': crashRate }
      : {};
// A crash point says what it hit before the process dies, so the harness knows what the dead process held.
const onCrash = (point: CrashPoint, ids: readonly string[]) => {
  writeSync(1, `crash ${point} ${ids.join(',')}\n`);
  process.kill(process.pid, 'SIGKILL');
};
const broker = broken(inner, process.env.TIDINGS_PROVE_BROKEN);
/** The storage, or a deliberately broken one (see TIDINGS_PROVE_BROKEN above). */
function broken(inner: MikroOrmStorage, kind: string | undefined): StorageAdapter {
  if (kind === undefined || kind === '') return inner;
  if (kind === 'ignore-keys') return decorateStorage(inner, { lease: (req: LeaseRequest) => inner.lease({ ...req, keyHeldIn: undefined }) });
  if (kind === 'lose-stored') {
    let stored = 0;
    return decorateStorage(inner, {
      async store(req: StoreRequest, tx?: Parameters<MikroOrmStorage['store']>[1]) {
        const results = await inner.store(req, tx);
        for (const r of results) {
          if (!r.duplicate && ++stored % 10 === 0)
            await inner.orm.em.getConnection().execute('DELETE FROM tidings_message WHERE topic = ? AND id = ?', [req.topic, r.id]);
        }
        return results;
      },
    });
  }
  throw new Error(`TIDINGS_PROVE_BROKEN must be ignore-keys or lose-stored, got ${kind}.`);
}
const storage = withFaults(broker, { seed, lostAckRate: a.role === 'producer' ? Number(a['lost-acks']) : 0, crash, onCrash });
// One function rather than top-level await, which the CommonJS build cannot hold.
async function main(): Promise<void> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
  const topic = tidings.topic<{ key: string; group?: string; position?: number }>(a.topic!, options);
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (process.env.TIDINGS_TRACE) {
    const log = (line: string) => appendFileSync(`${process.env.TIDINGS_TRACE}/${a.role}-${a.incarnation}-${process.pid}.log`, `${Date.now()} ${line}\n`);
    tidings.events.on('transition', (e) => log(`${e.id} ${e.from}-${e.event}->${e.to}`));
    tidings.events.on('duplicate', (e) => log(`${e.id} duplicate by ${e.by}`));
    tidings.events.on('error', (e) => log(`error ${String((e.error as Error)?.message ?? e.error)}`));
    tidings.events.on('handlerError', (e) => log(`${e.id} handlerError ${String((e.error as Error)?.message ?? e.error)}`));
  }
  // Exactly-once needs producer-made ids; at-most-once uses them so the broker's records and the consumers' reports name keys.
  const keyIsId = options.semantic === 'exactly-once' || options.semantic === 'at-most-once';

  if (a.role === 'producer') {
    for (let n = Number(a.from); n < Number(a.to); n++) {
      const key = `k-${n}`;
      out(`sent ${key}`);
      // Ordered: one key's messages go out one after another, each send awaited, so stored order is sent order.
      const group = `g${n % GROUPS}`;
      const payload = a.ordered ? { key, group, position: Math.floor(n / GROUPS) } : { key };
      try {
        const ack = await topic.send(payload, { ...(keyIsId ? { id: key } : {}), ...(a.ordered ? { key: group } : {}) });
        if (options.semantic !== 'at-most-once') out(`acked ${key} ${ack.id}`);
        // Fire and forget returns at once; an application sends as its work comes in, so the broker gets to store some.
        else await new Promise((r) => setTimeout(r, 2));
      } catch (error) {
        // Broker scope does not retry: a lost ack is the application's to live with (the message may be stored).
        if ((error as { code?: string }).code !== 'ACK_LOST') throw error;
      }
    }
    // close() waits for fire-and-forget sends: only then has this producer finished its work.
    await tidings.close();
    out('done');
    process.exit(0);
  } else {
    const incarnation = Number(a.incarnation);
    // At-most-once reports each lease, so the harness can bound what a killed consumer may lose and see any redelivery.
    // One line per leased batch: a batch's transitions are emitted together, so a microtask later the batch is complete.
    if (options.semantic === 'at-most-once') {
      const batch: string[] = [];
      let leasedBatches = 0;
      tidings.events.on('transition', (e) => {
        if (e.to !== 'leased') return;
        if (batch.length === 0)
          queueMicrotask(() => {
            out(`leased ${batch.splice(0).join(',')}`);
            // --kill-holding N: die right after the N-th leased batch, before its handlers run, so every run has
            // a consumer killed while it holds messages at-most-once must never hand out again.
            if (++leasedBatches === Number(a['kill-holding'])) process.kill(process.pid, 'SIGKILL');
          });
        batch.push(e.id);
      });
    }
    const insert = 'INSERT INTO prove_effects (topic, subscription, msg_key, incarnation, grp, position, overtook) VALUES (?, ?, ?, ?, ?, ?, ?)';
    // Whether a message of the same key stored before this one is still unsettled in this subscription: the storage's
    // own rows, read as the handler starts (inside the message's transaction where it has one).
    const unsettledBefore = `SELECT COUNT(*) AS n FROM tidings_message e JOIN tidings_message m ON m.topic = e.topic AND m.subscription = e.subscription
      WHERE m.topic = ? AND m.subscription = ? AND m.id = ? AND e.ordering_key = m.ordering_key AND e.seq < m.seq`;
    const subscription = a.subscription ? topic.subscription(a.subscription) : undefined;
    const handle = async (m: Message<{ key: string; group?: string; position?: number }>, ctx: ConsumeContext) => {
      out(`handling ${m.payload.key}`);
      const em = (ctx.em as EntityManager | undefined) ?? (inner.orm.em as EntityManager);
      const trx = ctx.em ? (ctx.em as EntityManager).getTransactionContext() : undefined;
      const connection = em.getConnection();
      let overtook = 0;
      if (m.key !== undefined) {
        const [row] = (await connection.execute(unsettledBefore, [a.topic, m.subscription, m.id], 'all', trx)) as Array<{ n: number | string }>;
        overtook = Number(row?.n ?? 0) > 0 ? 1 : 0;
      }
      // Exactly-once writes the effect in the message's transaction; the others write it on their own, then ack.
      await connection.execute(
        insert,
        [a.topic, m.subscription, m.payload.key, incarnation, m.payload.group ?? null, m.payload.position ?? null, overtook],
        'run',
        trx,
      );
    };
    const reader = subscription ?? topic;
    if (a.batch) {
      reader.consumeBatch(
        async (messages, ctx) => {
          out(`batch ${messages.length}`);
          for (const m of messages) await handle(m, ctx);
        },
        { batchSize: 10, pollMs: 20 },
      );
    } else {
      reader.consume(handle, { batchSize: 10, concurrency: 2, pollMs: 20 });
    }
    out('consuming');
    if (a.drain) {
      // Done once nothing is waiting, leased or half-consumed for a few checks in a row.
      for (let quiet = 0; quiet < 3;) {
        await new Promise((r) => setTimeout(r, Math.min(Number(a['lease-ms']), 200)));
        const c = subscription ? await subscription.counts() : ((await tidings.counts(a.topic!))[a.topic!] ?? {});
        quiet = (c.acked ?? 0) + (c.stored ?? 0) + (c.leased ?? 0) + (c.consumed ?? 0) === 0 ? quiet + 1 : 0;
      }
      await tidings.close();
      out('drained');
      process.exit(0);
    }
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
});

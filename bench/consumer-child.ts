// A consumer in a process of its own (started by bench/processes.ts): reports every handler run as
// [index, ms from send to handler start, epoch ms] over IPC, and stops when asked.
import { Tidings, type Semantic } from '@tidings/core';
import { decorateStorage, type LeaseRequest, type StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { epochMs, type BenchPayload } from './messages.js';

/** What the parent passes as the one argument, in JSON. */
export interface ConsumerChildConfig {
  storage: 'sqlite' | 'postgres';
  /** The SQLite file or PostgreSQL URL. */
  target: string;
  topic: string;
  semantic: Semantic;
  batchSize: number;
  concurrency: number;
}

/** What a consumer process's leases came to, reported when it stops. */
export interface LeaseStats {
  /** Lease statements run. */
  leases: number;
  /** Those that handed out nothing: the messages were taken by another process, or none were waiting. */
  empty: number;
  /** Those that handed out fewer than the batch size. */
  short: number;
  /** Statements and transactions the database made wait and that were tried again (SQLite's lock). */
  busyRetries: number;
}

const config = JSON.parse(process.argv[2]!) as ConsumerChildConfig;
const send = (m: object) => process.send?.(m);
const inner = config.storage === 'sqlite' ? sqliteStorage({ file: config.target }) : postgresStorage({ url: config.target });
const stats: LeaseStats = { leases: 0, empty: 0, short: 0, busyRetries: 0 };
const storage: StorageAdapter<any> = decorateStorage(inner, {
  async lease(req: LeaseRequest) {
    const leased = await inner.lease(req);
    stats.leases++;
    if (leased.length === 0) stats.empty++;
    else if (leased.length < req.limit) stats.short++;
    return leased;
  },
});
const tidings = await Tidings.create({ storage });
tidings.events.on('error', (e) => send({ type: 'error', message: `background error: ${String(e.error)}` }));
tidings.events.on('handlerError', (e) => send({ type: 'error', message: `handler error: ${String(e.error)}` }));
const topic = tidings.topic<BenchPayload>(config.topic, { semantic: config.semantic });
await topic.ready();

let handled: number[] = [];
const flush = () => {
  if (handled.length === 0) return;
  send({ type: 'handled', triples: handled });
  handled = [];
};
const flusher = setInterval(flush, 20);
const consumer = topic.consume(
  (m) => {
    const at = epochMs();
    handled.push(m.payload.i, at - m.payload.at, at);
  },
  { batchSize: config.batchSize, concurrency: config.concurrency },
);

let stopping = false;
process.on('message', (m: { type?: string }) => {
  if (m.type !== 'stop') return;
  stopping = true;
  void (async () => {
    await consumer.stop();
    clearInterval(flusher);
    flush();
    send({ type: 'leases', stats: { ...stats, busyRetries: inner.busyRetries } });
    await tidings.close();
    process.disconnect?.();
  })();
});
// Should the parent die, its consumer goes with it rather than consume on alone.
process.on('disconnect', () => stopping || process.exit(1));
send({ type: 'ready' });

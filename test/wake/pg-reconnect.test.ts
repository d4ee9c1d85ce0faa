import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type Topic } from '@tidings/core';
import { postgresStorage } from '@tidings/adapter-postgres';
import { startLocalPostgres, type LocalPostgres } from '@tidings/example-multi-node';

/**
 * PostgreSQL wake-ups that come back: a consumer woken by NOTIFY (its poll is a minute) keeps being woken after its
 * listening backend is terminated, after the server restarts, and when the server was down as it started. A server
 * of its own, since these tests take it down.
 */
const POLL_MS = 60_000;
/** Far under the poll: only a wake-up gets a message handled this soon. */
const WOKEN_MS = 1_000;
const now = () => performance.timeOrigin + performance.now();

let server: LocalPostgres;
beforeAll(async () => {
  server = await startLocalPostgres();
}, 60_000);
afterAll(() => server?.stop());

/** A producer and a consumer in two instances with pools of their own, as in two processes. */
async function pair(name: string) {
  const producer = await Tidings.create({ storage: postgresStorage({ url: server.url }), purgeIntervalMs: 0, logger: silentLogger });
  const consumerSide = await Tidings.create({ storage: postgresStorage({ url: server.url }), purgeIntervalMs: 0, logger: silentLogger });
  const topic = producer.topic<{ at: number; n: number }>(name, { semantic: 'at-least-once' });
  await topic.ready();
  const handled = new Map<number, number>();
  const start = () =>
    consumerSide
      .topic<{ at: number; n: number }>(name, { semantic: 'at-least-once' })
      .consume((m) => void handled.set(m.payload.n, now() - m.payload.at), { pollMs: POLL_MS });
  return { producer, consumerSide, topic, handled, start };
}

async function until(what: string, check: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends `count` messages one by one and answers each one's send → handler start, in ms. */
async function latencies(topic: Topic<{ at: number; n: number }>, handled: Map<number, number>, from: number, count = 5): Promise<number[]> {
  const out: number[] = [];
  for (let n = from; n < from + count; n++) {
    await topic.send({ at: now(), n });
    await until(`message ${n} handled`, () => handled.has(n), WOKEN_MS);
    out.push(handled.get(n)!);
  }
  return out;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('PostgreSQL wake-ups', () => {
  it('come back after the listening backend is terminated, waking the consumer for what came meanwhile', { timeout: 60_000 }, async () => {
    const p = await pair(`wake.kill.${Date.now()}`);
    const consumer = p.start();
    try {
      await until('wake-ups live', () => p.consumerSide.health().wakeUps?.state === 'live', 10_000);
      const before = await latencies(p.topic, p.handled, 0);
      const admin = new pg.Client({ connectionString: server.url });
      await admin.connect();
      const killed = (await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = 'LISTEN tidings_stored'`)).rowCount;
      await admin.end();
      expect(killed).toBe(1);
      const lostAt = Date.now();
      // Sent while nobody listens: the wake-up on reconnect finds it, not the minute-long poll.
      await p.topic.send({ at: now(), n: 100 });
      await until('the message sent while nobody listened', () => p.handled.has(100), 5_000);
      await until('wake-ups live again', () => p.consumerSide.health().wakeUps?.state === 'live' && p.consumerSide.health().wakeUps!.since >= lostAt, 5_000);
      const after = await latencies(p.topic, p.handled, 200);
      console.log(
        `wake-ups after a terminated backend: back in ${p.consumerSide.health().wakeUps!.since - lostAt} ms; send → handler start median ${median(before).toFixed(1)} ms before, ${median(after).toFixed(1)} ms after`,
      );
      expect(median(after)).toBeLessThan(50);
    } finally {
      await consumer.stop();
      await p.producer.close();
      await p.consumerSide.close();
    }
  });

  it('come back after the server restarts, and say they are down meanwhile', { timeout: 90_000 }, async () => {
    const p = await pair(`wake.restart.${Date.now()}`);
    const consumer = p.start();
    try {
      await until('wake-ups live', () => p.consumerSide.health().wakeUps?.state === 'live', 10_000);
      await latencies(p.topic, p.handled, 0, 2);
      await server.down();
      await until('wake-ups said to be down', () => p.consumerSide.health().wakeUps?.state === 'reconnecting', 5_000);
      expect(p.consumerSide.health().wakeUps!.lastError).toBeTypeOf('string');
      await new Promise((r) => setTimeout(r, 1_500));
      const upAt = Date.now();
      await server.up();
      await until('wake-ups live again', () => p.consumerSide.health().wakeUps?.state === 'live', 10_000);
      // The producer's pool lost its connections too: its first send may take a retry.
      await until(
        'a send after the restart',
        async () =>
          await p.topic.send({ at: now(), n: 99 }).then(
            () => true,
            () => false,
          ),
        10_000,
      );
      await until('the first message after the restart', () => p.handled.has(99), 5_000);
      const after = await latencies(p.topic, p.handled, 200);
      console.log(
        `wake-ups after a server restart: live ${p.consumerSide.health().wakeUps!.since - upAt} ms after the server was; send → handler start median ${median(after).toFixed(1)} ms`,
      );
      expect(median(after)).toBeLessThan(50);
    } finally {
      await consumer.stop();
      await p.producer.close();
      await p.consumerSide.close();
    }
  });

  it('start once the server is up, for a consumer started while it was down', { timeout: 90_000 }, async () => {
    const p = await pair(`wake.late.${Date.now()}`);
    let consumer: { stop(): Promise<void> } | undefined;
    let down = false;
    try {
      // Declared at boot, as an application does; the consumer starts later, during an outage.
      await p.consumerSide.topic(p.topic.name, { semantic: 'at-least-once' }).ready();
      await server.down();
      down = true;
      consumer = p.start();
      await until('wake-ups said to be down', () => p.consumerSide.health().wakeUps?.state === 'reconnecting', 10_000);
      await server.up();
      down = false;
      await until('wake-ups live', () => p.consumerSide.health().wakeUps?.state === 'live', 15_000);
      await until(
        'a send after the outage',
        async () =>
          await p.topic.send({ at: now(), n: 0 }).then(
            () => true,
            () => false,
          ),
        10_000,
      );
      await until('the first message', () => p.handled.has(0), 5_000);
      const after = await latencies(p.topic, p.handled, 200);
      console.log(`wake-ups for a consumer started during an outage: send → handler start median ${median(after).toFixed(1)} ms`);
      expect(median(after)).toBeLessThan(50);
    } finally {
      if (down) await server.up();
      await consumer?.stop();
      await p.producer.close();
      await p.consumerSide.close();
    }
  });
});

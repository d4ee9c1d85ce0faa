import { MemoryStorage, type MemoryTransaction } from '@tidings/adapter-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { AckTimeoutError, ManualClock, StorageError, silentLogger, type Tidings, type TopicOptions, type TransitionEvent } from '../src/index.js';
import type { StoreRequest, StoreResult } from '../src/adapter.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction>;
afterEach(() => tidings?.close());

describe('at-most-once', () => {
  it('deletes a message when it is handed out and never redelivers it, even after a handler failure', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-most-once' });
    const seen: number[] = [];
    let rowsDuringHandler = -1;
    const consumer = topic.consume(async (m) => {
      seen.push(m.payload);
      rowsDuringHandler = Object.values((await tidings.counts(topic.name))[topic.name] ?? {}).reduce((a, b) => a + b, 0);
      if (m.payload === 2) throw new Error('boom');
    });
    for (let i = 1; i <= 3; i++) await topic.send(i);
    await waitFor(() => seen.length === 3);
    await new Promise((r) => setTimeout(r, 150));
    await consumer.stop();
    expect(seen.sort()).toEqual([1, 2, 3]);
    expect(rowsDuringHandler).toBe(0);
  });

  it('emits sent -> stored -> leased -> deleted -> consumed and never acked', async () => {
    tidings = await memoryTidings();
    const events: TransitionEvent[] = [];
    tidings.events.on('transition', (e) => events.push(e));
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-most-once' });
    const { id } = await topic.send({ a: 1 });
    topic.consume(() => {});
    await waitFor(() => events.some((e) => e.to === 'consumed'));
    const path = events.filter((e) => e.id === id).map((e) => `${e.from}-${e.event}->${e.to}`);
    expect(path).toEqual(['sent-STORE->stored', 'stored-LEASE->leased', 'leased-DELETE->deleted', 'deleted-CONSUME->consumed']);
    expect(events[0]).toMatchObject({ topic: topic.name, semantic: 'at-most-once', lifecycle: 'at-most-once' });
    expect(typeof events[0]!.at).toBe('number');
  });
});

describe('at-least-once', () => {
  it('acks only once the message is stored, and deletes it only after the handler returns', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const ack = await topic.send('hello');
    expect(ack.duplicate).toBe(false);
    expect((await tidings.counts(topic.name))[topic.name]).toEqual({ acked: 1 });
    let stateInHandler: unknown;
    const consumer = topic.consume(async () => {
      stateInHandler = (await tidings.counts(topic.name))[topic.name];
    });
    await waitFor(async () => Object.keys((await tidings.counts(topic.name))[topic.name]!).length === 0);
    await consumer.stop();
    expect(stateInHandler).toEqual({ leased: 1 });
  });

  it('redelivers after a nack with the attempt counted, then dead-letters after maxDeliveries', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    const topic = tidings.topic(name, { semantic: 'at-least-once', maxDeliveries: 3, deadLetter: `${name}.dead`, backoff: { initialMs: 1, maxMs: 5 } });
    const attempts: number[] = [];
    const dead: string[] = [];
    tidings.events.on('deadLetter', (e) => dead.push(e.id));
    const { id } = await topic.send({ n: 1 });
    topic.consume((m) => {
      attempts.push(m.attempt);
      throw new Error('always fails');
    });
    await waitFor(() => dead.length === 1);
    expect(attempts).toEqual([1, 2, 3]);
    expect(dead).toEqual([id]);
    const counts = await tidings.counts();
    expect(counts[name]).toEqual({ dead: 1 });
    expect(counts[`${name}.dead`]).toEqual({ acked: 1 });
    const dlq: unknown[] = [];
    tidings.topic(`${name}.dead`, { semantic: 'at-least-once' }).consume((m) => void dlq.push(m.payload));
    await waitFor(() => dlq.length === 1);
    expect(dlq).toEqual([{ n: 1 }]);
  });

  it('redelivers after the lease expires, and a late ack from the first consumer loses', async () => {
    const clock = new ManualClock(1_000);
    tidings = await memoryTidings({ clock });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', leaseMs: 1_000 });
    await topic.send('slow');
    const deliveries: number[] = [];
    let release!: () => void;
    const blocked = new Promise<void>((r) => (release = r));
    const errors: string[] = [];
    tidings.events.on('error', (e) => errors.push((e.error as { code?: string }).code ?? ''));
    const first = topic.consume(async (m) => {
      deliveries.push(m.attempt);
      if (m.attempt === 1) await blocked;
    });
    await waitFor(() => deliveries.length === 1);
    const second = topic.consume(async (m) => void deliveries.push(m.attempt));
    clock.advance(1_001);
    await waitFor(() => deliveries.length === 2);
    release();
    await first.stop();
    await second.stop();
    expect(deliveries).toEqual([1, 2]);
    expect(errors).toContain('LEASE_LOST');
  });

  it('keeps a lease that the handler extends', async () => {
    const clock = new ManualClock(1_000);
    tidings = await memoryTidings({ clock });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', leaseMs: 1_000 });
    await topic.send('long');
    const deliveries: number[] = [];
    const consumer = topic.consume(async (m, ctx) => {
      deliveries.push(m.attempt);
      await ctx.extendLease(10_000);
      clock.advance(5_000);
      await new Promise((r) => setTimeout(r, 50));
    });
    await waitFor(async () => Object.keys((await tidings.counts(topic.name))[topic.name]!).length === 0);
    await consumer.stop();
    expect(deliveries).toEqual([1]);
  });

  it('holds a delayed message back until its time', async () => {
    const clock = new ManualClock(1_000);
    tidings = await memoryTidings({ clock });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once' });
    await topic.send('later', { delayMs: 60_000 });
    const got: string[] = [];
    topic.consume((m) => void got.push(m.payload as string), { pollMs: 10 });
    await new Promise((r) => setTimeout(r, 60));
    expect(got).toEqual([]);
    clock.advance(60_000);
    await waitFor(() => got.length === 1);
  });

  it('redrives dead messages back to the topic as new deliveries', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', maxDeliveries: 1, backoff: { initialMs: 1, maxMs: 1 } });
    await topic.send('poison');
    let fail = true;
    const ok: string[] = [];
    topic.consume((m) => {
      if (fail) throw new Error('bad');
      ok.push(m.payload as string);
    });
    await waitFor(async () => (await tidings.deadLetters(topic.name)).length === 1);
    fail = false;
    expect(await tidings.redrive(topic.name)).toBe(1);
    await waitFor(() => ok.length === 1);
    expect(await tidings.deadLetters(topic.name)).toEqual([]);
  });
});

/**
 * Memory storage whose `store` waits for the test before it writes, and may fail without writing: the slow or
 * failing write a real database can make, which the synchronous memory store never does.
 */
class SlowStoreStorage extends MemoryStorage {
  /** Store calls that reached the storage, finished or not. */
  calls = 0;
  /** Store calls whose write finished. */
  writes = 0;
  private readonly waiting: Array<{ write: () => void; fail: (error: Error) => void }> = [];

  override async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    this.calls++;
    await new Promise<void>((write, fail) => this.waiting.push({ write, fail }));
    const results = await super.store(req, tx);
    this.writes++;
    return results;
  }

  /** Store calls waiting for the test. */
  get pending(): number {
    return this.waiting.length;
  }

  /** The oldest waiting store writes and answers. */
  finishStore(): void {
    this.waiting.shift()!.write();
  }

  /** The oldest waiting store fails without writing. */
  failStore(): void {
    this.waiting.shift()!.fail(new StorageError('the disk is not answering'));
  }
}

describe.each([
  ['at-least-once, broker-made id', { semantic: 'at-least-once' }, undefined],
  ['at-least-once, producer id', { semantic: 'at-least-once' }, 'order-1'],
  ['exactly-once end-to-end', { semantic: 'exactly-once', scope: 'end-to-end' }, 'order-1'],
] as const)('the producer ack over a slow or failing store (%s)', (_, semantic, id) => {
  const options: TopicOptions = { ...semantic, retry: { attempts: 3, initialMs: 1, maxMs: 1 } };

  async function slowStoreTopic() {
    const storage = new SlowStoreStorage();
    tidings = await memoryTidings({ storage, logger: silentLogger });
    const topic = tidings.topic<string>(uniqueTopic(), options);
    /** How many writes had finished when the producer was told the message was acked (undefined: not acked). */
    const acked: { writes?: number } = {};
    const sending = topic.send('hello', id === undefined ? {} : { id }).then((ack) => {
      acked.writes = storage.writes;
      return ack;
    });
    const rows = async () => (await tidings.counts(topic.name))[topic.name] ?? {};
    /** The ids the storage holds in `acked`, the state an acked send is stored in. */
    const held = async () => (await storage.peek({ topic: topic.name, subscription: 'default', state: 'acked', limit: 10 })).map((m) => m.id);
    return { storage, sending, acked, rows, held };
  }

  it('does not resolve send() while the store is still writing, and resolves it once the write is done', async () => {
    const { storage, sending, acked, rows, held } = await slowStoreTopic();
    await waitFor(() => storage.pending === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(acked.writes).toBeUndefined();
    expect(await rows()).toEqual({});
    storage.finishStore();
    const ack = await sending;
    expect(ack).toEqual({ id: id ?? expect.any(String), duplicate: false });
    expect(acked.writes).toBe(1);
    expect(await held()).toEqual([ack.id]);
  });

  it('retries a store that failed without writing, and acks only once a retry has stored the message', async () => {
    const { storage, sending, acked, held } = await slowStoreTopic();
    await waitFor(() => storage.pending === 1);
    storage.failStore();
    await waitFor(() => storage.calls === 2 && storage.pending === 1);
    await new Promise((r) => setTimeout(r, 100));
    expect(acked.writes).toBeUndefined();
    storage.finishStore();
    const ack = await sending;
    expect(ack).toEqual({ id: id ?? expect.any(String), duplicate: false });
    expect(acked.writes).toBe(1);
    expect(await held()).toEqual([ack.id]);
  });

  it('rejects send() with ACK_TIMEOUT, never an ack, when every store attempt fails', async () => {
    const { storage, sending, acked, rows } = await slowStoreTopic();
    const outcome = sending.catch((error: unknown) => error);
    for (let attempt = 1; attempt <= 3; attempt++) {
      await waitFor(() => acked.writes !== undefined || (storage.calls === attempt && storage.pending === 1));
      expect(acked.writes, `acked while store attempt ${attempt} was still pending`).toBeUndefined();
      storage.failStore();
    }
    const error = await outcome;
    expect(error).toBeInstanceOf(AckTimeoutError);
    expect(error).toMatchObject({ code: 'ACK_TIMEOUT' });
    expect(acked.writes).toBeUndefined();
    expect(storage).toMatchObject({ calls: 3, writes: 0 });
    expect(await rows()).toEqual({});
  });
});

describe('retention', () => {
  it('keeps dead letters for retentionMs, then purge() removes them', async () => {
    const clock = new ManualClock(1_000);
    tidings = await memoryTidings({ clock });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', maxDeliveries: 1, retentionMs: 60_000, backoff: { initialMs: 1, maxMs: 1 } });
    await topic.send('poison');
    topic.consume(() => {
      throw new Error('bad');
    });
    await waitFor(async () => (await tidings.deadLetters(topic.name)).length === 1);
    clock.advance(30_000);
    await tidings.purge();
    expect(await tidings.deadLetters(topic.name)).toHaveLength(1);
    clock.advance(30_001);
    expect(await tidings.purge()).toBe(1);
    expect(await tidings.deadLetters(topic.name)).toEqual([]);
  });
});

describe('exactly-once', () => {
  it('end-to-end: answers a resend of an id with the original ack, also after consumption, until the window ends', async () => {
    const clock = new ManualClock(1_000);
    tidings = await memoryTidings({ clock });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'exactly-once', dedupWindowMs: 10_000 });
    const got: unknown[] = [];
    const consumer = topic.consume((m) => void got.push(m.payload));
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: false });
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
    await waitFor(async () => got.length === 1 && Object.keys((await tidings.counts(topic.name))[topic.name]!).length === 0);
    expect(await topic.send('a', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: true });
    clock.advance(10_001);
    await tidings.purge();
    expect(await topic.send('a2', { id: 'order-1' })).toEqual({ id: 'order-1', duplicate: false });
    await consumer.stop();
  });

  it('broker scope: a redelivered id the idempotency store holds is consumed without running the handler', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'exactly-once', scope: 'broker' });
    const { id } = await topic.send('x');
    const store = tidings.storage.idempotencyStore!();
    await store.record(topic.name, [id], Date.now() + 60_000);
    const ran: string[] = [];
    const dups: string[] = [];
    tidings.events.on('duplicate', (e) => dups.push(`${e.by}:${e.id}`));
    const consumer = topic.consume((m) => void ran.push(m.id));
    await waitFor(async () => Object.keys((await tidings.counts(topic.name))[topic.name]!).length === 0);
    await consumer.stop();
    expect(ran).toEqual([]);
    expect(dups).toEqual([`consumer:${id}`]);
  });

  it('records the id only when the handler succeeds, so a failed attempt is retried', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'exactly-once', backoff: { initialMs: 1, maxMs: 1 } });
    const attempts: number[] = [];
    await topic.send('x', { id: 'x' });
    const consumer = topic.consume((m) => {
      attempts.push(m.attempt);
      if (m.attempt === 1) throw new Error('first try fails');
    });
    await waitFor(() => attempts.length === 2);
    await consumer.stop();
    expect(attempts).toEqual([1, 2]);
    expect(await tidings.storage.idempotencyStore!().seen(topic.name, ['x'])).toEqual(new Set(['x']));
  });
});

describe('consumers', () => {
  it('runs up to `concurrency` handlers at once', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    await topic.sendMany(Array.from({ length: 20 }, (_, i) => i));
    let running = 0;
    let peak = 0;
    let done = 0;
    const consumer = topic.consume(
      async () => {
        peak = Math.max(peak, ++running);
        await new Promise((r) => setTimeout(r, 5));
        running--;
        done++;
      },
      { concurrency: 4, batchSize: 20 },
    );
    await waitFor(() => done === 20);
    await consumer.stop();
    expect(peak).toBe(4);
  });

  it('close() drains in-flight handlers and settles them before closing storage', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once' });
    const { id } = await topic.send('work');
    const settled: string[] = [];
    tidings.events.on('transition', (e) => e.to === 'deleted' && settled.push(e.id));
    let finished = false;
    let started = false;
    topic.consume(async () => {
      started = true;
      await new Promise((r) => setTimeout(r, 100));
      finished = true;
    });
    await waitFor(() => started);
    await tidings.close();
    expect(finished).toBe(true);
    expect(settled).toEqual([id]);
    await expect(topic.send('late')).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

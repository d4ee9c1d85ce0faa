import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError, StorageError, Tidings, silentLogger, type IdGenerator } from '@tidings/core';
import type { StorageAdapter, StoreRequest } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import {
  CrashError,
  checkDeliveries,
  guaranteeHeld,
  seededRandom,
  withFaults,
  type CrashPoint,
  type CrashRecord,
  type Effect,
  type FaultOptions,
} from '@tidings/faults';

let n = 0;
/** A topic name no other test uses. */
const uniqueTopic = () => `faults.${process.pid}.${++n}`;

/** Ids that replay: the same run makes the same ids, so two runs under one seed can be compared call by call. */
function counterIds(): IdGenerator {
  let i = 0;
  return { next: () => `id-${++i}` };
}

async function waitFor(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const open: Tidings<any>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

async function tidingsOver<S extends StorageAdapter<any>>(storage: S) {
  const t = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger, ids: counterIds() });
  open.push(t);
  return t;
}

/** An onCrash for one process: it ends the current incarnation and records which messages the crash hit. */
function crashRecorder() {
  const state = { incarnation: 0, crashes: [] as Array<{ point: CrashPoint; ids: readonly string[]; incarnation: number }> };
  const onCrash = (point: CrashPoint, ids: readonly string[]) => {
    state.crashes.push({ point, ids, incarnation: state.incarnation++ });
    throw new CrashError(point, ids);
  };
  return { state, onCrash };
}

/** A unique topic with its default subscription recorded, so that a store keeps a copy. */
async function subscribedTopic(storage: StorageAdapter<any>): Promise<string> {
  const topic = uniqueTopic();
  await storage.declareSubscription({ topic, name: 'default', maxDeliveries: 5, declaredAt: 0 });
  return topic;
}

function storeRequest(topic: string, ids: string[], over: Partial<StoreRequest> = {}): StoreRequest {
  return { topic, state: 'acked', messages: ids.map((id) => ({ id, body: '{}', availableAt: 0 })), now: 0, ...over };
}

/** Each store call's outcome under `options`: 'ok', or the error code it failed with. */
async function storeOutcomes(options: FaultOptions, calls: number): Promise<string[]> {
  const storage = withFaults(memoryStorage(), options);
  const topic = await subscribedTopic(storage);
  const out: string[] = [];
  for (let i = 0; i < calls; i++) {
    try {
      const [r] = await storage.store(storeRequest(topic, [`m${i}`]));
      out.push(r!.id === `m${i}` ? 'ok' : 'dup');
    } catch (error) {
      out.push((error as StorageError).code);
    }
  }
  return out;
}

describe('seededRandom', () => {
  it('gives the same sequence for the same seed, in [0, 1)', () => {
    const a = seededRandom(42);
    const b = seededRandom(42);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
  });

  it('gives different sequences for different seeds', () => {
    const a = seededRandom(1);
    const b = seededRandom(2);
    expect(Array.from({ length: 10 }, () => a())).not.toEqual(Array.from({ length: 10 }, () => b()));
  });

  it('spreads its numbers evenly enough for fault rates', () => {
    const r = seededRandom(7);
    const below = Array.from({ length: 10_000 }, () => r()).filter((x) => x < 0.25).length;
    expect(below / 10_000).toBeGreaterThan(0.23);
    expect(below / 10_000).toBeLessThan(0.27);
  });
});

describe('withFaults: lost acks', () => {
  it('loses acks at the seeded rate, after the broker stored the message', async () => {
    const inner = memoryStorage();
    const storage = withFaults(inner, { seed: 11, lostAckRate: 0.3 });
    const topic = await subscribedTopic(storage);
    let lost = 0;
    for (let i = 0; i < 1000; i++) {
      await storage.store(storeRequest(topic, [`m${i}`])).catch((error) => {
        expect(error).toBeInstanceOf(StorageError);
        expect(error.code).toBe('ACK_LOST');
        lost++;
      });
    }
    expect(storage.faults.lostAcks).toBe(lost);
    expect(lost / 1000).toBeGreaterThan(0.25);
    expect(lost / 1000).toBeLessThan(0.35);
    // The broker committed every one of them: only the answer went missing.
    expect((await inner.counts(topic))[topic]?.default).toEqual({ acked: 1000 });
  });

  it('replays the same faults for the same seed, and others for another seed', async () => {
    const options = { seed: 1234, lostAckRate: 0.2, duplicateSendRate: 0.2 };
    const first = await storeOutcomes(options, 200);
    expect(await storeOutcomes(options, 200)).toEqual(first);
    expect(await storeOutcomes({ ...options, seed: 1235 }, 200)).not.toEqual(first);
  });

  it('keeps each fault on its own stream, so turning on delays does not move the lost acks', async () => {
    const base = await storeOutcomes({ seed: 5, lostAckRate: 0.3 }, 100);
    expect(await storeOutcomes({ seed: 5, lostAckRate: 0.3, delayRate: 0.5, delayMs: [0, 0] }, 100)).toEqual(base);
  });

  it('replays a whole producer run: same seed, same lost acks, same messages stored', async () => {
    const run = async (seed: number) => {
      const storage = withFaults(memoryStorage(), { seed, lostAckRate: 0.3, duplicateSendRate: 0.1 });
      const t = await tidingsOver(storage);
      const topic = t.topic<{ key: string }>('replay', { semantic: 'at-least-once', retry: { attempts: 20, initialMs: 1, maxMs: 2 } });
      const acks = [];
      for (let i = 0; i < 40; i++) acks.push(await topic.send({ key: `k${i}` }));
      const stored = (await storage.peek({ topic: 'replay', subscription: 'default', state: 'acked', limit: 1000 })).map((m) => m.id);
      return { faults: structuredClone(storage.faults), acks, stored };
    };
    const first = await run(77);
    expect(first.faults.lostAcks).toBeGreaterThan(0);
    expect(await run(77)).toEqual(first);
  });

  it('does not lose the ack of a store inside the caller’s transaction, which has not committed yet', async () => {
    const storage = withFaults(memoryStorage(), { seed: 1, lostAckRate: 1 });
    const topic = await subscribedTopic(storage);
    await expect(storage.transaction((tx) => storage.store(storeRequest(topic, ['a']), tx))).resolves.toEqual([{ id: 'a', duplicate: false }]);
    expect(storage.faults.lostAcks).toBe(0);
  });

  it('makes the real producer retry: at-least-once without an id stores a duplicate per lost ack', async () => {
    const storage = withFaults(memoryStorage(), { seed: 3, lostAckRate: 0.4 });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'at-least-once', retry: { attempts: 20, initialMs: 1, maxMs: 2 } });
    for (let i = 0; i < 30; i++) await topic.send({ key: `k${i}` });
    expect(storage.faults.lostAcks).toBeGreaterThan(0);
    expect((await t.counts(topic.name))[topic.name]).toEqual({ acked: 30 + storage.faults.lostAcks });
  });

  it('makes the real producer retry: end-to-end exactly-once stores each message once and answers the retry as a duplicate', async () => {
    const storage = withFaults(memoryStorage(), { seed: 3, lostAckRate: 0.4 });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'exactly-once', retry: { attempts: 20, initialMs: 1, maxMs: 2 } });
    const acks = [];
    for (let i = 0; i < 30; i++) acks.push(await topic.send({ key: `k${i}` }, { id: `k${i}` }));
    expect(storage.faults.lostAcks).toBeGreaterThan(0);
    expect((await t.counts(topic.name))[topic.name]).toEqual({ acked: 30 });
    // A send whose first ack was lost hears the broker's answer to a retry: already held (a retry's ack can be lost too).
    const answeredAsDuplicate = acks.filter((a) => a.duplicate).length;
    expect(answeredAsDuplicate).toBeGreaterThan(0);
    expect(answeredAsDuplicate).toBeLessThanOrEqual(storage.faults.lostAcks);
  });
});

describe('withFaults: duplicated sends', () => {
  it('stores an at-least-once batch twice under fresh ids, so the duplicate is real', async () => {
    const inner = memoryStorage();
    const storage = withFaults(inner, { seed: 1, duplicateSendRate: 1 });
    const topic = await subscribedTopic(storage);
    const results = await storage.store(storeRequest(topic, ['a', 'b']));
    expect(storage.faults.duplicateSends).toBe(1);
    expect(results).toEqual([
      { id: 'a~dup1', duplicate: false },
      { id: 'b~dup1', duplicate: false },
    ]);
    expect((await inner.counts(topic))[topic]?.default).toEqual({ acked: 4 });
  });

  it('repeats an end-to-end exactly-once batch with the same ids, so the broker’s dedup answers it', async () => {
    const inner = memoryStorage();
    const storage = withFaults(inner, { seed: 1, duplicateSendRate: 1 });
    const topic = await subscribedTopic(storage);
    // The topic's lifecycle is learned from its declaration, as Tidings makes it.
    await storage.declareTopic({ name: topic, lifecycle: 'exactly-once/end-to-end', maxDeliveries: 5, declaredAt: 0 });
    const results = await storage.store(storeRequest(topic, ['a'], { dedupUntil: 1000 }));
    expect(results).toEqual([{ id: 'a', duplicate: true }]);
    expect((await inner.counts(topic))[topic]?.default).toEqual({ acked: 1 });
  });

  it('duplicates sends at the seeded rate', async () => {
    const storage = withFaults(memoryStorage(), { seed: 9, duplicateSendRate: 0.1 });
    const topic = await subscribedTopic(storage);
    for (let i = 0; i < 1000; i++) await storage.store(storeRequest(topic, [`m${i}`]));
    expect(storage.faults.duplicateSends).toBeGreaterThan(70);
    expect(storage.faults.duplicateSends).toBeLessThan(130);
  });
});

describe('withFaults: delays', () => {
  it('delays calls at the seeded rate, for the configured time', async () => {
    const storage = withFaults(memoryStorage(), { seed: 2, delayRate: 0.5, delayMs: [20, 20] });
    const topic = await subscribedTopic(storage);
    const started = Date.now();
    for (let i = 0; i < 20; i++) await storage.store(storeRequest(topic, [`m${i}`]));
    expect(storage.faults.delays).toBeGreaterThan(4);
    expect(storage.faults.delays).toBeLessThan(16);
    expect(Date.now() - started).toBeGreaterThanOrEqual(storage.faults.delays * 19);
  });
});

describe('withFaults: crash points', () => {
  it('crashes after the broker stored and before it acked: the send fails, the message is held', async () => {
    const { state, onCrash } = crashRecorder();
    const storage = withFaults(memoryStorage(), { seed: 1, crash: { 'after-store-before-ack': 1 }, onCrash });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'at-least-once' });
    await expect(topic.send({ key: 'a' }, { id: 'a' })).rejects.toMatchObject({ code: 'CRASHED', point: 'after-store-before-ack', ids: ['a'] });
    expect(state.crashes).toEqual([{ point: 'after-store-before-ack', ids: ['a'], incarnation: 0 }]);
    expect(storage.faults.crashes['after-store-before-ack']).toBe(1);
    expect((await t.counts(topic.name))[topic.name]).toEqual({ acked: 1 });
  });

  it('crashes after the lease and before the handler: the handler never sees it, the lease expires, a later incarnation consumes it', async () => {
    const { state, onCrash } = crashRecorder();
    const storage = withFaults(memoryStorage(), { seed: 4, crash: { 'after-lease-before-handler': 0.5 }, onCrash });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'at-least-once', leaseMs: 40, maxDeliveries: 50 });
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    for (const key of keys) await topic.send({ key }, { id: key });
    const consumed: Effect[] = [];
    const attempts = new Map<string, number>();
    const consumer = topic.consume(
      (m) => {
        consumed.push({ key: m.payload.key, incarnation: state.incarnation });
        attempts.set(m.payload.key, m.attempt);
      },
      { batchSize: 1, pollMs: 5 },
    );
    await waitFor(() => new Set(consumed.map((e) => e.key)).size === keys.length);
    await consumer.stop();

    expect(state.crashes.length).toBeGreaterThan(0);
    expect(state.crashes.every((c) => c.point === 'after-lease-before-handler' && c.ids.length === 1)).toBe(true);
    // The handler ran once per key: the crash came before it, so nothing was done twice.
    expect(consumed).toHaveLength(keys.length);
    for (const c of state.crashes) expect(attempts.get(c.ids[0]!)).toBeGreaterThan(1);
    const crashed: CrashRecord[] = state.crashes.map((c) => ({ key: c.ids[0]!, incarnation: c.incarnation }));
    const check = checkDeliveries({ lifecycle: 'at-least-once', sent: keys, acked: keys, consumed, crashed });
    expect(check.recovered).toBe(new Set(crashed.map((c) => c.key)).size);
    expect(guaranteeHeld('at-least-once', check).held).toBe(true);
  });

  it('crashes after an at-least-once handler and before its ack: the message is redelivered and its effect repeats', async () => {
    const { state, onCrash } = crashRecorder();
    const storage = withFaults(memoryStorage(), { seed: 6, crash: { 'after-handler-before-ack': 0.5 }, onCrash });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'at-least-once', leaseMs: 40, maxDeliveries: 50 });
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    for (const key of keys) await topic.send({ key }, { id: key });
    const consumed: Effect[] = [];
    const consumer = topic.consume((m) => void consumed.push({ key: m.payload.key, incarnation: state.incarnation }), { batchSize: 1, pollMs: 5 });
    await waitFor(async () => Object.keys((await t.counts(topic.name))[topic.name] ?? {}).length === 0);
    await consumer.stop();

    expect(storage.faults.crashes['after-handler-before-ack']).toBeGreaterThan(0);
    const crashed = state.crashes.map((c) => ({ key: c.ids[0]!, incarnation: c.incarnation }));
    const check = checkDeliveries({ lifecycle: 'at-least-once', sent: keys, acked: keys, consumed, crashed });
    expect(check.duplicated).toBe(new Set(crashed.map((c) => c.key)).size);
    expect(check.recovered).toBe(check.duplicated);
    expect(guaranteeHeld('at-least-once', check).held).toBe(true);
    expect(guaranteeHeld('exactly-once/end-to-end', check).held).toBe(false);
  });

  it('crashes an exactly-once handler before its transaction commits: the inbox rolls back, so every effect happens once', async () => {
    const { state, onCrash } = crashRecorder();
    const storage = withFaults(memoryStorage(), { seed: 6, crash: { 'after-handler-before-ack': 0.5 }, onCrash });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), {
      semantic: 'exactly-once',
      leaseMs: 40,
      maxDeliveries: 50,
      backoff: { initialMs: 1, maxMs: 5 },
    });
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`);
    for (const key of keys) await topic.send({ key }, { id: key });
    const consumed: Effect[] = [];
    const consumer = topic.consume(
      (m, ctx) => {
        const effect = { key: m.payload.key, incarnation: state.incarnation };
        consumed.push(effect);
        // The effect is written in the message's transaction, as a handler writing through ctx.em would.
        ctx.em.undo.push(() => consumed.splice(consumed.indexOf(effect), 1));
      },
      { batchSize: 1, pollMs: 5 },
    );
    await waitFor(async () => Object.keys((await t.counts(topic.name))[topic.name] ?? {}).length === 0);
    await consumer.stop();

    expect(storage.faults.crashes['after-handler-before-ack']).toBeGreaterThan(0);
    expect(state.crashes.every((c) => c.ids.length === 1)).toBe(true);
    const crashed = state.crashes.map((c) => ({ key: c.ids[0]!, incarnation: c.incarnation }));
    const check = checkDeliveries({ lifecycle: 'exactly-once/end-to-end', sent: keys, acked: keys, consumed, crashed });
    expect(check).toMatchObject({ lost: 0, duplicated: 0, distinct: keys.length, recovered: new Set(crashed.map((c) => c.key)).size });
    expect(guaranteeHeld('exactly-once/end-to-end', check).held).toBe(true);
  });

  it('loses the ack of a committed exactly-once consumption: the effect stays once, the message is not redelivered', async () => {
    const inner = memoryStorage();
    const storage = withFaults(inner, { seed: 3, lostConsumeAckRate: 0.5 });
    const t = await tidingsOver(storage);
    const topic = t.topic<{ key: string }>(uniqueTopic(), { semantic: 'exactly-once', leaseMs: 40, backoff: { initialMs: 1, maxMs: 5 } });
    const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
    for (const key of keys) await topic.send({ key }, { id: key });
    const effects: string[] = [];
    const consumer = topic.consume(
      (m, ctx) => {
        effects.push(m.payload.key);
        ctx.em.undo.push(() => effects.splice(effects.lastIndexOf(m.payload.key), 1));
      },
      { batchSize: 5, concurrency: 2, pollMs: 5 },
    );
    await waitFor(async () => Object.keys((await t.counts(topic.name))[topic.name] ?? {}).length === 0);
    await consumer.stop();

    expect(storage.faults.lostConsumeAcks).toBeGreaterThan(0);
    expect([...effects].sort()).toEqual([...keys].sort());
  });

  it('kills the process with SIGKILL by default, so nothing after the crash point runs', () => {
    const script = `
      import { withFaults } from '@tidings/faults';
      import { memoryStorage } from '@tidings/adapter-memory';
      const storage = withFaults(memoryStorage(), { seed: 1, crash: { 'after-store-before-ack': 1 } });
      await storage.store({ topic: 't', state: 'acked', messages: [{ id: 'a', body: '{}', availableAt: 0 }], now: 0 }).catch(() => {});
      console.log('survived');`;
    const child = spawnSync(process.execPath, ['--conditions=@tidings/source', '--import', 'tsx', '--input-type=module', '-e', script], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      encoding: 'utf8',
    });
    expect(child.signal).toBe('SIGKILL');
    expect(child.stdout).not.toContain('survived');
  });

  it('does not roll a crash for an empty lease, so idle polling cannot change which messages crash', async () => {
    const storage = withFaults(memoryStorage(), { seed: 1, crash: { 'after-lease-before-handler': 1 }, onCrash: () => {} });
    const topic = await subscribedTopic(storage);
    const lease = {
      topic,
      subscription: 'default',
      from: 'acked' as const,
      to: 'leased' as const,
      limit: 10,
      now: 0,
      leaseUntil: 100,
      leaseToken: 'x',
      remove: false,
    };
    await expect(storage.lease(lease)).resolves.toEqual([]);
    await storage.store(storeRequest(topic, ['a']));
    // An onCrash that returns still stops the operation: a crash never returns.
    await expect(storage.lease(lease)).rejects.toBeInstanceOf(CrashError);
    expect(storage.faults.crashes['after-lease-before-handler']).toBe(1);
  });
});

describe('withFaults: delegation', () => {
  it('passes through every member, optional ones only when the adapter has them', async () => {
    const inner = memoryStorage();
    const storage = withFaults(inner, { seed: 1 });
    expect(storage.name).toBe('memory');
    expect(storage.seed).toBe(1);
    expect('watch' in storage).toBe(false);
    expect(storage.idempotencyStore!()).toBe(inner.idempotencyStore());
    let opened = 0;
    const unwatch = () => {};
    const withOptional = withFaults({ ...fakeAdapter(), open: async () => void opened++, watch: () => unwatch }, { seed: 1 });
    await withOptional.open!();
    expect(opened).toBe(1);
    expect(withOptional.watch!('t', () => {})).toBe(unwatch);
    await storage.close();
    await expect(storage.counts()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

function fakeAdapter(): StorageAdapter {
  const none = async () => [] as never;
  return {
    name: 'fake',
    store: none,
    lease: none,
    extendLease: async () => true,
    settle: none,
    release: none,
    expire: none,
    declareTopic: async (topic) => topic,
    topics: none,
    redrive: none,
    counts: async () => ({}),
    declareSubscription: async (subscription) => subscription,
    subscriptions: none,
    removeSubscription: async () => 0,
    peek: none,
    purge: async () => 0,
    transaction: (fn) => fn(undefined),
    close: async () => {},
  };
}

describe('withFaults: options', () => {
  const bad: Array<[string, unknown, RegExp]> = [
    ['a rate above 1', { seed: 1, lostAckRate: 1.5 }, /lostAckRate must be a probability between 0 and 1/],
    ['a negative rate', { seed: 1, delayRate: -0.1 }, /delayRate must be a probability/],
    ['a lost consume-ack rate above 1', { seed: 1, lostConsumeAckRate: 2 }, /lostConsumeAckRate must be a probability/],
    ['a rate that is not a number', { seed: 1, duplicateSendRate: '0.1' }, /duplicateSendRate must be a probability/],
    ['a NaN crash rate', { seed: 1, crash: { 'after-store-before-ack': NaN } }, /crash\['after-store-before-ack'\] must be a probability/],
    ['an unknown crash point', { seed: 1, crash: { 'before-lunch': 0.1 } }, /Unknown crash point "before-lunch". Crash points: after-store-before-ack/],
    ['a missing seed', { lostAckRate: 0.1 }, /seed must be an integer/],
    ['a fractional seed', { seed: 1.5 }, /seed must be an integer/],
    ['delay bounds out of order', { seed: 1, delayMs: [20, 10] }, /delayMs must be \[min, max\]/],
    ['an unknown option', { seed: 1, lostAckRates: 0.1 }, /Unknown fault option "lostAckRates". Known options: seed, lostAckRate/],
    ['an onCrash that is not a function', { seed: 1, onCrash: 'exit' }, /onCrash must be a function/],
  ];
  it.each(bad)('refuses %s with InvalidOptionsError saying what to fix', (_, options, message) => {
    expect(() => withFaults(memoryStorage(), options as FaultOptions)).toThrow(InvalidOptionsError);
    expect(() => withFaults(memoryStorage(), options as FaultOptions)).toThrow(message);
  });

  it('refuses something that is not a storage adapter', () => {
    expect(() => withFaults({} as StorageAdapter, { seed: 1 })).toThrow(/needs a storage adapter to wrap/);
  });
});

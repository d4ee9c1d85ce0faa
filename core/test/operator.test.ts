import type { MemoryTransaction } from '@tidings/adapter-memory';
import { memoryStorage } from '@tidings/adapter-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError, OperationNotSupportedError, Tidings, UnknownSubscriptionError, type OperatorEvent } from '../src/index.js';
import { decorateStorage } from '../src/adapter.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction>;
afterEach(() => tidings?.close());

describe("an operator's verbs on a subscription", () => {
  it("pauses this process's consumers at once: the batch in hand finishes, nothing more is leased until resume", async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    const orders = topic.subscription('default');
    const got: number[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const consumer = topic.consume(
      async (m) => {
        if (m.payload === 1) await gate;
        got.push(m.payload);
      },
      { batchSize: 1, pollMs: 10_000 },
    );
    await topic.send(1);
    await waitFor(() => consumer.state === 'handling');
    await orders.pause();
    expect(await orders.pausedAt()).toBeTypeOf('number');
    await topic.sendMany([2, 3]);
    release();
    await waitFor(() => consumer.state === 'paused');
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual([1]);
    await orders.resume();
    expect(await orders.pausedAt()).toBeUndefined();
    await waitFor(() => got.length === 3);
    await consumer.stop();
  });

  it('starts a consumer of a paused subscription paused', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    await topic.subscription('default').pause();
    await topic.send(1);
    const consumer = topic.consume(() => undefined, { pollMs: 10 });
    await waitFor(() => consumer.state === 'paused');
    expect((await topic.subscription('default').counts()).acked).toBe(1);
    await consumer.stop();
  });

  it('reports each act on the bus as an operator event', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    const events: OperatorEvent[] = [];
    tidings.events.on('operator', (e) => events.push(e));
    const s = topic.subscription('default');
    await topic.send(1, { delayMs: 60_000 });
    await topic.send(2);
    await s.pause();
    await s.resume();
    expect(await s.retryNow()).toBe(1);
    expect(await s.discard(['x'])).toBe(0);
    expect(await s.empty()).toBe(2);
    expect(events.map((e) => [e.action, e.subscription, e.count, e.ids])).toEqual([
      ['pause', 'default', 0, undefined],
      ['resume', 'default', 0, undefined],
      ['retryNow', 'default', 1, undefined],
      ['discard', 'default', 0, ['x']],
      ['empty', 'default', 2, undefined],
    ]);
  });

  it('browses by view, id and key, and reads one message', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<{ n: number }>(uniqueTopic(), { semantic: 'at-least-once', ordering: 'key' });
    const [a] = await topic.sendMany([{ n: 1 }, { n: 2 }], { key: () => 'k' });
    await topic.send({ n: 3 }, { delayMs: 60_000 });
    const s = topic.subscription('default');
    expect((await s.browse({ view: 'waiting' })).messages.map((m) => JSON.parse(m.body))).toEqual([{ n: 1 }, { n: 2 }]);
    expect((await s.browse({ view: 'delayed' })).messages.map((m) => JSON.parse(m.body))).toEqual([{ n: 3 }]);
    expect((await s.browse({ view: 'dead' })).messages).toEqual([]);
    expect((await s.browse({ key: 'k', limit: 1 })).next).toBeTypeOf('string');
    expect(await s.message(a!.id)).toMatchObject({ id: a!.id, key: 'k', state: 'acked' });
  });

  it('refuses bad browse options with INVALID_OPTIONS, saying what to pass', async () => {
    tidings = await memoryTidings();
    const s = tidings.topic(uniqueTopic(), { semantic: 'at-least-once' }).subscription('default');
    const bad: Array<[object, RegExp]> = [
      [{}, /needs a view \(waiting, delayed, leased, dead\), an id or a key/],
      [{ view: 'ready' }, /view must be one of waiting, delayed, leased, dead; got "ready"/],
      [{ view: 'waiting', limit: 0 }, /limit must be a whole number from 1 to 500/],
      [{ view: 'waiting', limit: 501 }, /limit must be a whole number from 1 to 500/],
      [{ id: '' }, /id must be a non-empty string/],
      [{ view: 'waiting', after: 'garbage' }, /is not a cursor this storage made/],
    ];
    for (const [options, message] of bad) {
      const error = await s.browse(options as never).catch((e: unknown) => e);
      expect(error, JSON.stringify(options)).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('refuses a verb the adapter lacks with OPERATION_NOT_SUPPORTED, and a subscription nobody recorded with UNKNOWN_SUBSCRIPTION', async () => {
    const inner = memoryStorage();
    const bare = decorateStorage(inner, { setPaused: undefined, browse: undefined, discard: undefined, retryNow: undefined });
    tidings = (await Tidings.create({ storage: bare, purgeIntervalMs: 0 })) as Tidings<MemoryTransaction>;
    const s = tidings.topic(uniqueTopic(), { semantic: 'at-least-once' }).subscription('default');
    for (const act of [() => s.pause(), () => s.browse({ view: 'waiting' }), () => s.empty(), () => s.discard(), () => s.retryNow()]) {
      const error = await act().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OperationNotSupportedError);
      expect((error as Error).message).toMatch(/The memory storage adapter has no \w+\(\), so Tidings cannot .* Implement \w+\(\) in the adapter/);
    }
    // Removed by another process after this one declared it: nothing to pause.
    const noRecord = await memoryTidings();
    const stray = noRecord.topic(uniqueTopic(), { semantic: 'at-least-once' });
    await stray.ready();
    await noRecord.storage.removeSubscription(stray.name, 'default');
    await expect(stray.subscription('default').pause()).rejects.toBeInstanceOf(UnknownSubscriptionError);
    await noRecord.close();
  });
});

import type { MemoryTransaction } from '@tidings/adapter-memory';
import { memoryStorage } from '@tidings/adapter-memory';
import { container } from 'tsyringe';
import { afterEach, describe, expect, it } from 'vitest';
import {
  InvalidMessageError,
  MAX_HEADER_BYTES,
  Tidings,
  TidingsError,
  Tokens,
  type BatchContext,
  type BatchHandleContext,
  type InspectionEvent,
  type Message,
  type TidingsPlugin,
} from '../src/index.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction> | undefined;
afterEach(async () => {
  await tidings?.close({ graceMs: 0 });
  tidings = undefined;
});

/** A plugin's refusal, with a stable code like Tidings' own errors. */
class OrderRejectedError extends TidingsError {
  constructor(reason: string) {
    super('ORDER_REJECTED', reason);
  }
}

describe('plugins', () => {
  it('wraps send and handle in registration order, the first outermost, and passes headers a plugin adds to the handler', async () => {
    const calls: string[] = [];
    const tracer: TidingsPlugin = {
      name: 'tracer',
      async send(ctx, next) {
        calls.push(`tracer send ${ctx.topic} ${ctx.lifecycle} ${ctx.messages.length}`);
        for (const m of ctx.messages) m.headers.traceparent = `00-${m.id}`;
        const acks = await next();
        calls.push('tracer sent');
        return acks;
      },
      async handle(ctx, next) {
        calls.push(`tracer handle ${ctx.message.headers.traceparent}`);
        await next();
        calls.push('tracer handled');
      },
    };
    const inner: TidingsPlugin = {
      name: 'inner',
      send: async (ctx, next) => (calls.push(`inner send ${ctx.messages[0]!.headers.traceparent}`), next()),
      handle: async (ctx, next) => (calls.push(`inner handle ${ctx.message.payload as string}`), next()),
    };
    tidings = await memoryTidings({ plugins: [tracer, inner] });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const seen: Message<string>[] = [];
    topic.consume((m) => {
      calls.push('handler');
      seen.push(m);
    });
    const ack = await topic.send('hello', { headers: { 'x-tenant': 'acme' } });
    await waitFor(() => calls.includes('tracer handled'));
    expect(calls).toEqual([
      `tracer send ${topic.name} at-least-once 1`,
      `inner send 00-${ack.id}`,
      'tracer sent',
      `tracer handle 00-${ack.id}`,
      'inner handle hello',
      'handler',
      'tracer handled',
    ]);
    expect(seen[0]!.headers).toEqual({ 'x-tenant': 'acme', traceparent: `00-${ack.id}` });
    expect(Object.isFrozen(seen[0]!.headers)).toBe(true);
  });

  it('lets a validation plugin refuse a bad payload with its own typed error, storing nothing of the batch', async () => {
    const validate: TidingsPlugin = {
      name: 'validate',
      async send(ctx, next) {
        for (const m of ctx.messages) {
          const total = (m.payload as { total?: unknown }).total;
          if (typeof total !== 'number' || total <= 0)
            throw new OrderRejectedError(`order ${m.id}: total must be a positive number, got ${JSON.stringify(total)}`);
        }
        return next();
      },
    };
    tidings = await memoryTidings({ plugins: [validate] });
    const topic = tidings.topic<{ total: unknown }>(uniqueTopic(), { semantic: 'exactly-once' });
    await expect(topic.sendMany([{ total: 5 }, { total: -1 }], { id: (_, i) => `o-${i}` })).rejects.toMatchObject({
      code: 'ORDER_REJECTED',
      message: 'order o-1: total must be a positive number, got -1',
    });
    expect((await tidings.counts(topic.name))[topic.name] ?? {}).toEqual({});
    expect(await topic.send({ total: 5 }, { id: 'o-2' })).toEqual({ id: 'o-2', duplicate: false });
  });

  it('treats a throw in a handle wrapper as the handler failing: the message is nacked and redelivered', async () => {
    let refuse = true;
    const gate: TidingsPlugin = {
      name: 'gate',
      handle: async (_ctx, next) => {
        if (refuse) {
          refuse = false;
          throw new Error('not yet');
        }
        return next();
      },
    };
    tidings = await memoryTidings({ plugins: [gate] });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
    const attempts: number[] = [];
    topic.consume((m) => void attempts.push(m.attempt), { pollMs: 5 });
    await topic.send('a');
    await waitFor(() => attempts.length === 1);
    expect(attempts).toEqual([2]);
  });

  it('wraps each batch handler run in handleBatch, in registration order, with the batch and the context the handler gets, and not in handle', async () => {
    const calls: string[] = [];
    const seen: BatchHandleContext[] = [];
    const outer: TidingsPlugin = {
      name: 'outer',
      handle: async (_ctx, next) => (calls.push('outer handle'), next()),
      async handleBatch(ctx, next) {
        seen.push(ctx);
        calls.push(`outer batch ${ctx.topic} ${ctx.subscription} ${ctx.lifecycle} ${ctx.messages.map((m) => m.payload as string).join(',')}`);
        await next();
        calls.push('outer batched');
      },
    };
    const inner: TidingsPlugin = { name: 'inner', handleBatch: async (ctx, next) => (calls.push(`inner batch ${ctx.messages.length}`), next()) };
    tidings = await memoryTidings({ plugins: [outer, inner] });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once', subscriptions: ['audit'] });
    await topic.sendMany(['a', 'b', 'c']);
    const handled: Array<{ messages: Message<string>[]; ctx: BatchContext }> = [];
    topic.subscription('audit').consumeBatch(
      (messages, ctx) => {
        calls.push('handler');
        handled.push({ messages, ctx });
      },
      { pollMs: 5 },
    );
    await waitFor(() => calls.includes('outer batched'));
    expect(calls).toEqual([`outer batch ${topic.name} audit at-least-once a,b,c`, 'inner batch 3', 'handler', 'outer batched']);
    expect(seen[0]!.messages).toBe(handled[0]!.messages);
    expect(seen[0]!.context).toBe(handled[0]!.ctx);
    await waitFor(async () => Object.keys((await tidings!.counts(topic.name))[topic.name] ?? {}).length === 0);
  });

  it.each(['at-least-once', 'exactly-once'] as const)(
    '%s: treats a throw in a handleBatch wrapper as the batch handler failing: every message is nacked and redelivered',
    async (semantic) => {
      const refusal = new Error('not yet');
      const gate: TidingsPlugin = {
        name: 'gate',
        handleBatch: async (ctx, next) => {
          if (ctx.messages.some((m) => m.attempt === 1)) throw refusal;
          return next();
        },
      };
      tidings = await memoryTidings({ plugins: [gate] });
      const topic = tidings.topic<string>(uniqueTopic(), { semantic, backoff: { initialMs: 1, maxMs: 1 } });
      const errors: unknown[] = [];
      tidings.events.on('handlerError', (e) => void (e.topic === topic.name && errors.push(e.error)));
      await topic.sendMany(['a', 'b', 'c'], { id: (p) => `m-${p}` });
      const runs: Array<Array<[string, number]>> = [];
      topic.consumeBatch((messages) => void runs.push(messages.map((m) => [m.payload, m.attempt])), { pollMs: 5 });
      await waitFor(() => runs.flat().length === 3);
      expect(runs.flat().sort()).toEqual([
        ['a', 2],
        ['b', 2],
        ['c', 2],
      ]);
      expect(errors).toEqual([refusal, refusal, refusal]);
    },
  );

  it('dead-letters every message of a batch whose handleBatch wrapper throws on its last delivery, as a batch handler throw does', async () => {
    const refuse: TidingsPlugin = { name: 'refuse', handleBatch: () => Promise.reject(new Error('closed')) };
    tidings = await memoryTidings({ plugins: [refuse] });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once', maxDeliveries: 1 });
    let handled = 0;
    topic.consumeBatch(() => void handled++, { pollMs: 5 });
    await topic.sendMany(['a', 'b', 'c']);
    await waitFor(async () => (await tidings!.counts(topic.name))[topic.name]?.dead === 3);
    expect((await tidings.deadLetters(topic.name)).map((m) => JSON.parse(m.body) as string).sort()).toEqual(['a', 'b', 'c']);
    expect(handled).toBe(0);
  });

  it('takes plugins registered in the container too, after those passed to create, and runs setup and close once each', async () => {
    const order: string[] = [];
    const plugin = (name: string): TidingsPlugin => ({
      name,
      setup: (host) => void order.push(`${name} setup ${typeof host.counts}`),
      send: (_ctx, next) => (order.push(`${name} send`), next()),
      close: () => void order.push(`${name} close`),
    });
    const parent = container.createChildContainer();
    parent.register(Tokens.Plugin, { useValue: plugin('registered') });
    tidings = await Tidings.create({ storage: memoryStorage(), container: parent, purgeIntervalMs: 0, plugins: [plugin('passed')] });
    await tidings.topic(uniqueTopic(), { semantic: 'at-least-once' }).send(1);
    await tidings.close();
    expect(order).toEqual(['passed setup function', 'registered setup function', 'passed send', 'registered send', 'passed close', 'registered close']);
  });

  it('refuses a malformed plugin at create with INVALID_OPTIONS, and closes storage when a setup fails', async () => {
    await expect(memoryTidings({ plugins: [{ name: '' } as TidingsPlugin] })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: expect.stringContaining('plugins[0] must be an object with a name'),
    });
    await expect(memoryTidings({ plugins: [{ name: 'm', handle: 'x' } as unknown as TidingsPlugin] })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: 'Plugin "m": handle must be a function, got string.',
    });
    await expect(memoryTidings({ plugins: [{ name: 'b', handleBatch: 1 } as unknown as TidingsPlugin] })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
      message: 'Plugin "b": handleBatch must be a function, got number.',
    });
    const storage = memoryStorage();
    await expect(Tidings.create({ storage, plugins: [{ name: 'broken', setup: () => Promise.reject(new Error('no port')) }] })).rejects.toThrow('no port');
    await expect(storage.counts()).rejects.toMatchObject({ code: 'CLOSED' });
  });
});

describe('headers', () => {
  it('keeps headers through a nack, a redelivery and the dead-letter copy', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    const topic = tidings.topic<string>(name, { semantic: 'at-least-once', maxDeliveries: 2, deadLetter: `${name}.dead`, backoff: { initialMs: 1, maxMs: 1 } });
    const seen: Array<Readonly<Record<string, string>>> = [];
    topic.consume(
      (m) => {
        seen.push(m.headers);
        throw new Error('declined');
      },
      { pollMs: 5 },
    );
    const copies: Message<string>[] = [];
    tidings.topic<string>(`${name}.dead`, { semantic: 'at-least-once' }).consume((m) => void copies.push(m), { pollMs: 5 });
    await topic.send('a', { headers: { traceparent: '00-abc-def-01' } });
    await waitFor(() => copies.length === 1);
    expect(seen).toEqual([{ traceparent: '00-abc-def-01' }, { traceparent: '00-abc-def-01' }]);
    expect(copies[0]!.headers).toEqual({ traceparent: '00-abc-def-01' });
  });

  it('gives a message sent without headers an empty object', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-most-once' });
    const seen: object[] = [];
    topic.consume((m) => void seen.push(m.headers));
    await topic.send('a');
    await waitFor(() => seen.length === 1);
    expect(seen).toEqual([{}]);
  });

  it.each([
    [{ 'bad name': 'x' }, 'Header name "bad name"'],
    [{ n: 1 }, 'Header "n" for topic'],
    [{ n: null }, 'must be a string, got null'],
    [['x'], 'headers for topic'],
    [{ big: 'x'.repeat(MAX_HEADER_BYTES) }, `more than the ${MAX_HEADER_BYTES} allowed`],
  ])('refuses headers %j with INVALID_MESSAGE, storing nothing', async (headers, message) => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const error = await topic.send('a', { headers: headers as never }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(InvalidMessageError);
    expect((error as Error).message).toContain(message);
    expect((await tidings.counts(topic.name))[topic.name] ?? {}).toEqual({});
  });

  it('checks headers a plugin adds like a caller’s, naming the plugin as their source', async () => {
    tidings = await memoryTidings({ plugins: [{ name: 'bad', send: (ctx, next) => ((ctx.messages[0]!.headers['no spaces'] = 'x'), next()) }] });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    await expect(topic.send('a', { id: 'm1' })).rejects.toMatchObject({
      code: 'INVALID_MESSAGE',
      message: expect.stringContaining('of message m1 (set by a plugin)'),
    });
  });
});

describe('inspect', () => {
  it('streams one topic’s transitions in XState’s inspection shape, a final state as done, and stops when asked', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const other = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const events: InspectionEvent[] = [];
    const stop = tidings.inspect((e) => events.push(e), { topic: topic.name });
    topic.consume(() => {});
    const { id } = await topic.send('a');
    await other.send('b');
    await waitFor(() => events.some((e) => e.snapshot.value === 'deleted'));
    expect(events.map((e) => `${e.event.type} ${e.snapshot.value} ${e.snapshot.status}`)).toEqual([
      'STORE stored active',
      'ACK acked active',
      'LEASE leased active',
      'CONSUME consumed active',
      'DELETE deleted done',
    ]);
    expect(events[0]).toMatchObject({
      type: '@xstate.snapshot',
      rootId: topic.name,
      actorRef: { id, sessionId: `${topic.name}/${id}` },
      snapshot: { context: { topic: topic.name, lifecycle: 'at-least-once' } },
    });
    stop();
    expect(tidings.events.listenerCount('transition')).toBe(0);
  });
});

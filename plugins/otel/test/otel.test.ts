import { context, propagation, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { Tidings, type Message, type TidingsPlugin } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { otelPlugin } from '../src/index.js';

const exporter = new InMemorySpanExporter();
const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
const app = provider.getTracer('app');
const dir = mkdtempSync(join(tmpdir(), 'tidings-otel-'));

beforeAll(() => {
  // What an application's SDK set-up does: a context manager, so context.with reaches the handler, and W3C propagation.
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(new W3CTraceContextPropagator());
});
afterAll(() => {
  context.disable();
  propagation.disable();
  rmSync(dir, { recursive: true, force: true });
});

let tidings: Tidings<any> | undefined;
afterEach(async () => {
  await tidings?.close();
  tidings = undefined;
  exporter.reset();
});

let n = 0;
/** A topic name no other test uses. */
const uniqueTopic = () => `otel.${process.pid}.${++n}`;

/** Polls `check` until it returns true or 5 s pass. */
async function waitFor(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met within 5 s');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The ended spans of one topic, of one kind. */
function spansOf(topic: string, kind: SpanKind): ReadableSpan[] {
  return exporter.getFinishedSpans().filter((s) => s.kind === kind && s.attributes['messaging.destination.name'] === topic);
}

/** The W3C traceparent a span's context is written as (sampled). */
const traceparentOf = (span: ReadableSpan) => `00-${span.spanContext().traceId}-${span.spanContext().spanId}-01`;

const storages: Array<[string, () => StorageAdapter<any>]> = [
  ['memory', () => memoryStorage()],
  ['a SQLite file', () => sqliteStorage({ file: join(dir, `${++n}.db`) })],
];

describe.each(storages)('otelPlugin on %s', (_name, storage) => {
  const open = (plugins: TidingsPlugin[] = [otelPlugin({ tracerProvider: provider })]) => Tidings.create({ storage: storage(), purgeIntervalMs: 0, plugins });

  it('gives each message one producer span and one consumer span, linked through the traceparent header it was stored with', async () => {
    tidings = await open();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const seen: Message<string>[] = [];
    topic.consume((m) => void seen.push(m), { pollMs: 5 });
    const acks = [await topic.send('a'), await topic.send('b')];
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 2);

    const producers = spansOf(topic.name, SpanKind.PRODUCER);
    const consumers = spansOf(topic.name, SpanKind.CONSUMER);
    expect(producers.map((s) => s.attributes['messaging.message.id'])).toEqual(acks.map((a) => a.id));
    for (const ack of acks) {
      const producer = producers.find((s) => s.attributes['messaging.message.id'] === ack.id)!;
      const consumer = consumers.find((s) => s.attributes['messaging.message.id'] === ack.id)!;
      expect(producer.name).toBe(`${topic.name} publish`);
      expect(producer.attributes).toEqual({
        'messaging.system': 'tidings',
        'messaging.destination.name': topic.name,
        'messaging.operation.type': 'publish',
        'messaging.operation.name': 'publish',
        'messaging.message.id': ack.id,
        'tidings.lifecycle': 'at-least-once',
      });
      expect(consumer.name).toBe(`${topic.name} process`);
      expect(consumer.attributes).toEqual({
        'messaging.system': 'tidings',
        'messaging.destination.name': topic.name,
        'messaging.consumer.group.name': 'default',
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.message.id': ack.id,
        'tidings.subscription': 'default',
        'tidings.attempt': 1,
        'tidings.lifecycle': 'at-least-once',
      });
      expect(consumer.links.map((l) => l.context)).toEqual([
        expect.objectContaining({ traceId: producer.spanContext().traceId, spanId: producer.spanContext().spanId }),
      ]);
      // Linked, not parented: the consumer's run is a trace of its own.
      expect(consumer.parentSpanContext).toBeUndefined();
      expect(consumer.spanContext().traceId).not.toBe(producer.spanContext().traceId);
      expect(seen.find((m) => m.id === ack.id)!.headers).toEqual({ traceparent: traceparentOf(producer) });
    }
  });

  it('makes the consumer span active while the handler runs, so a span the handler starts is its child', async () => {
    tidings = await open();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'exactly-once' });
    topic.consume(
      async () => {
        await new Promise((r) => setTimeout(r, 1)); // across an await, as real handlers are
        app.startActiveSpan('charge card', (span) => span.end());
      },
      { pollMs: 5 },
    );
    await topic.send('a', { id: 'order-1' });
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 1);

    const [consumer] = spansOf(topic.name, SpanKind.CONSUMER);
    const child = exporter.getFinishedSpans().find((s) => s.name === 'charge card')!;
    expect(child.parentSpanContext?.spanId).toBe(consumer!.spanContext().spanId);
    expect(child.spanContext().traceId).toBe(consumer!.spanContext().traceId);
  });

  it('marks a failing handler’s consumer span ERROR with the exception, rethrows it unchanged, and links the redelivery’s span to the same producer span', async () => {
    tidings = await open();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
    const thrown = new Error('card declined');
    const reported: unknown[] = [];
    tidings.events.on('handlerError', (e) => void reported.push(e.error));
    topic.consume(
      (m) => {
        if (m.attempt === 1) throw thrown;
      },
      { pollMs: 5 },
    );
    await topic.send('a');
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 2);

    const [producer] = spansOf(topic.name, SpanKind.PRODUCER);
    const [failed, redelivered] = spansOf(topic.name, SpanKind.CONSUMER);
    expect(reported).toEqual([thrown]);
    expect(reported[0]).toBe(thrown);
    expect(failed!.attributes['tidings.attempt']).toBe(1);
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'card declined' });
    expect(failed!.attributes['error.type']).toBe('Error');
    expect(failed!.events.map((e) => [e.name, e.attributes?.['exception.message']])).toEqual([['exception', 'card declined']]);
    expect(redelivered!.attributes['tidings.attempt']).toBe(2);
    expect(redelivered!.status.code).toBe(SpanStatusCode.UNSET);
    for (const consumer of [failed!, redelivered!]) {
      expect(consumer.links.map((l) => l.context.spanId)).toEqual([producer!.spanContext().spanId]);
    }
  });

  it("names each subscription's consumer span after it, as the consumer group, and carries the ordering key when the message has one", async () => {
    tidings = await open();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once', ordering: 'key', subscriptions: ['billing', 'email'] });
    for (const name of ['billing', 'email']) topic.subscription(name).consume(() => undefined, { pollMs: 5 });
    const keyed = await topic.send('a', { key: 'customer-7' });
    const plain = await topic.send('b');
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 4);

    const [producer] = spansOf(topic.name, SpanKind.PRODUCER).filter((s) => s.attributes['messaging.message.id'] === keyed.id);
    const consumers = spansOf(topic.name, SpanKind.CONSUMER);
    const seen = consumers.map((s) => [
      s.attributes['messaging.message.id'] === keyed.id ? 'keyed' : 'plain',
      s.attributes['messaging.consumer.group.name'],
      s.attributes['tidings.subscription'],
      s.attributes['tidings.ordering_key'],
    ]);
    expect(seen.sort()).toEqual([
      ['keyed', 'billing', 'billing', 'customer-7'],
      ['keyed', 'email', 'email', 'customer-7'],
      ['plain', 'billing', 'billing', undefined],
      ['plain', 'email', 'email', undefined],
    ]);
    expect(consumers.filter((s) => s.attributes['messaging.message.id'] === plain.id).every((s) => !('tidings.ordering_key' in s.attributes))).toBe(true);
    // Every subscription's run of a message links to the message's one producer span, which names no subscription.
    for (const consumer of consumers.filter((s) => s.attributes['messaging.message.id'] === keyed.id))
      expect(consumer.links[0]!.context.spanId).toBe(producer!.spanContext().spanId);
    expect(producer!.attributes['messaging.consumer.group.name']).toBeUndefined();
  });

  it('gives a batch handler run one consumer span, linked to each message’s producer span and active while the handler runs', async () => {
    tidings = await open();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'exactly-once', subscriptions: ['ledger'] });
    const acks = await topic.sendMany([1, 2, 3], { id: (p) => `m-${p}` });
    const runs: number[] = [];
    topic.subscription('ledger').consumeBatch(
      async (messages) => {
        runs.push(messages.length);
        await new Promise((r) => setTimeout(r, 1));
        app.startActiveSpan('write rows', (span) => span.end());
      },
      { pollMs: 5, batchSize: 10 },
    );
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 1 && exporter.getFinishedSpans().some((s) => s.name === 'write rows'));

    expect(runs).toEqual([3]);
    const producers = spansOf(topic.name, SpanKind.PRODUCER);
    const [consumer] = spansOf(topic.name, SpanKind.CONSUMER);
    expect(consumer!.name).toBe(`${topic.name} process`);
    expect(consumer!.attributes).toEqual({
      'messaging.system': 'tidings',
      'messaging.destination.name': topic.name,
      'messaging.consumer.group.name': 'ledger',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.batch.message_count': 3,
      'tidings.subscription': 'ledger',
      'tidings.lifecycle': 'exactly-once/end-to-end',
    });
    const linked = consumer!.links.map((l) => [l.attributes?.['messaging.message.id'], l.context.spanId]);
    expect(linked.sort()).toEqual(acks.map((a) => [a.id, producers.find((s) => s.attributes['messaging.message.id'] === a.id)!.spanContext().spanId]).sort());
    expect(consumer!.parentSpanContext).toBeUndefined();
    const child = exporter.getFinishedSpans().find((s) => s.name === 'write rows')!;
    expect(child.parentSpanContext?.spanId).toBe(consumer!.spanContext().spanId);
    expect(child.spanContext().traceId).toBe(consumer!.spanContext().traceId);
  });

  it('marks a failing batch run’s consumer span ERROR, and links the redelivered batch’s span to the same producer spans', async () => {
    tidings = await open();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
    await topic.sendMany([1, 2]);
    let runs = 0;
    topic.consumeBatch(
      () => {
        if (++runs === 1) throw new Error('disk full');
      },
      { pollMs: 5 },
    );
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length >= 2 && runs >= 2);

    const producers = spansOf(topic.name, SpanKind.PRODUCER)
      .map((s) => s.spanContext().spanId)
      .sort();
    const [failed, ...redelivered] = spansOf(topic.name, SpanKind.CONSUMER);
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'disk full' });
    expect(failed!.events.map((e) => e.name)).toEqual(['exception']);
    expect(failed!.links.map((l) => l.context.spanId).sort()).toEqual(producers);
    expect(redelivered.every((s) => s.status.code === SpanStatusCode.UNSET)).toBe(true);
    expect(redelivered.flatMap((s) => s.links.map((l) => l.context.spanId)).sort()).toEqual(producers);
  });

  it('counts on a batch run’s span the messages its handler marked failed, the run itself not failed', async () => {
    tidings = await open();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } });
    await topic.sendMany([1, 2, 3]);
    let runs = 0;
    topic.consumeBatch(
      (messages, ctx) => {
        if (++runs === 1) for (const m of messages.slice(0, 2)) ctx.fail(m);
      },
      { pollMs: 5, batchSize: 10 },
    );
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length >= 2 && runs >= 2);

    const [partial, ...again] = spansOf(topic.name, SpanKind.CONSUMER);
    expect(partial!.attributes['tidings.batch.failed_count']).toBe(2);
    expect(partial!.status.code).toBe(SpanStatusCode.UNSET);
    expect(again.every((s) => s.attributes['tidings.batch.failed_count'] === undefined)).toBe(true);
  });

  it('gives each message of a sendMany batch its own producer span and traceparent', async () => {
    tidings = await open();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    const seen: Message<number>[] = [];
    topic.consume((m) => void seen.push(m), { pollMs: 5, batchSize: 10 });
    const acks = await topic.sendMany([1, 2, 3]);
    await waitFor(() => spansOf(topic.name, SpanKind.CONSUMER).length === 3);

    const producers = spansOf(topic.name, SpanKind.PRODUCER);
    expect(producers.map((s) => s.attributes['messaging.message.id'])).toEqual(acks.map((a) => a.id));
    expect(new Set(producers.map((s) => s.spanContext().spanId)).size).toBe(3);
    for (const producer of producers) {
      const message = seen.find((m) => m.id === producer.attributes['messaging.message.id'])!;
      expect(message.headers.traceparent).toBe(traceparentOf(producer));
      const consumer = spansOf(topic.name, SpanKind.CONSUMER).find((s) => s.attributes['messaging.message.id'] === message.id)!;
      expect(consumer.links[0]!.context.spanId).toBe(producer.spanContext().spanId);
    }
  });
});

describe('otelPlugin', () => {
  const open = (plugins: TidingsPlugin[]) => Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, plugins });

  it('starts the producer span inside the caller’s trace, keeping the caller’s own headers', async () => {
    tidings = await open([otelPlugin({ tracerProvider: provider })]);
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const seen: Message<string>[] = [];
    topic.consume((m) => void seen.push(m), { pollMs: 5 });
    const request = app.startSpan('POST /orders');
    await context.with(trace.setSpan(context.active(), request), () => topic.send('a', { headers: { 'x-tenant': 'acme' } }));
    request.end();

    const [producer] = spansOf(topic.name, SpanKind.PRODUCER);
    expect(producer!.parentSpanContext?.spanId).toBe(request.spanContext().spanId);
    expect(producer!.spanContext().traceId).toBe(request.spanContext().traceId);
    await waitFor(() => seen.length === 1);
    expect(seen[0]!.headers).toEqual({ 'x-tenant': 'acme', traceparent: traceparentOf(producer!) });
  });

  it('marks the producer span of a retry the broker answered as a duplicate', async () => {
    tidings = await open([otelPlugin({ tracerProvider: provider })]);
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'exactly-once' });
    await topic.send('a', { id: 'order-1' });
    await topic.send('a', { id: 'order-1' });
    expect(spansOf(topic.name, SpanKind.PRODUCER).map((s) => s.attributes['tidings.duplicate'])).toEqual([undefined, true]);
  });

  it('marks every producer span of a refused send ERROR with the exception', async () => {
    const refuse: TidingsPlugin = {
      name: 'refuse',
      send: () => Promise.reject(Object.assign(new Error('over quota'), { code: 'OVER_QUOTA' })),
    };
    tidings = await open([otelPlugin({ tracerProvider: provider }), refuse]);
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    await expect(topic.sendMany([1, 2])).rejects.toThrow('over quota');

    const producers = spansOf(topic.name, SpanKind.PRODUCER);
    expect(producers.map((s) => [s.status, s.attributes['error.type'], s.events[0]?.name])).toEqual([
      [{ code: SpanStatusCode.ERROR, message: 'over quota' }, 'OVER_QUOTA', 'exception'],
      [{ code: SpanStatusCode.ERROR, message: 'over quota' }, 'OVER_QUOTA', 'exception'],
    ]);
  });

  it('adds no header and records nothing while no tracer provider is registered (the API’s no-op)', async () => {
    tidings = await open([otelPlugin()]);
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const seen: Message<string>[] = [];
    topic.consume((m) => void seen.push(m), { pollMs: 5 });
    await topic.send('a');
    await waitFor(() => seen.length === 1);
    expect(seen[0]!.headers).toEqual({});
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('keeps a handler’s spans out of the trace that was active where consume() was called, also with the no-op provider', async () => {
    tidings = await open([otelPlugin()]);
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const startup = app.startSpan('start-up');
    // The consumer's loop runs in the context it was started in, as AsyncLocalStorage carries it.
    context.with(trace.setSpan(context.active(), startup), () => topic.consume(() => app.startSpan('charge card').end(), { pollMs: 5 }));
    startup.end();
    await topic.send('a');
    await waitFor(() => exporter.getFinishedSpans().some((s) => s.name === 'charge card'));
    expect(exporter.getFinishedSpans().find((s) => s.name === 'charge card')!.parentSpanContext).toBeUndefined();
  });
});

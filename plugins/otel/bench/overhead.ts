// What otelPlugin costs a message: its send and handle wrappers alone, per message, and sends and handler runs end to
// end on memory storage, without the plugin, with it on the API's no-op provider, and with it recording spans.
// Run: node --conditions=@tidings/source --import tsx plugins/otel/bench/overhead.ts
import { context, propagation, type TracerProvider } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { memoryStorage } from '@tidings/adapter-memory';
import { Tidings, type HandleContext, type SendContext, type TidingsPlugin } from '@tidings/core';
import { otelPlugin } from '../src/index.js';

const MESSAGES = 20_000;
const BATCH = 1_000;

/** Drops every span, so recording is priced without an exporter's I/O. */
const discard: SpanExporter = { export: (_spans, done) => done({ code: 0 }), shutdown: async () => {} };
const recording: TracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(discard)] });

/** µs per message of the plugin's own send and handle wrappers, around steps that do nothing. */
async function wrappers(plugin: TidingsPlugin): Promise<{ send: number; handle: number }> {
  const acks = Promise.resolve([]);
  const messages = Array.from({ length: BATCH }, (_, i) => ({ id: `m-${i}`, payload: i, headers: {} as Record<string, string> }));
  const sends = MESSAGES / BATCH;
  let start = performance.now();
  for (let i = 0; i < sends; i++) {
    for (const m of messages) m.headers = {};
    await plugin.send!({ topic: 'bench', lifecycle: 'at-least-once', messages } as SendContext, () => acks);
  }
  const send = ((performance.now() - start) * 1_000) / MESSAGES;
  const done = Promise.resolve();
  const ctx = {
    topic: 'bench',
    lifecycle: 'at-least-once',
    message: { id: 'm', topic: 'bench', payload: 1, attempt: 1, createdAt: 0, headers: messages[0]!.headers },
  } as unknown as HandleContext;
  start = performance.now();
  for (let i = 0; i < MESSAGES * 5; i++) await plugin.handle!(ctx, () => done);
  return { send, handle: ((performance.now() - start) * 1_000) / (MESSAGES * 5) };
}

/** Messages per second, sent in batches and consumed in batches on memory storage. */
async function endToEnd(plugins: TidingsPlugin[]): Promise<number> {
  const tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, plugins });
  const topic = tidings.topic<number>('bench', { semantic: 'at-least-once' });
  let handled = 0;
  const start = performance.now();
  topic.consume(() => void handled++, { batchSize: BATCH, pollMs: 1 });
  for (let sent = 0; sent < MESSAGES; sent += BATCH) await topic.sendMany(Array.from({ length: BATCH }, (_, i) => sent + i));
  while (handled < MESSAGES) await new Promise((r) => setTimeout(r, 1));
  const rate = MESSAGES / ((performance.now() - start) / 1_000);
  await tidings.close();
  return rate;
}

const runs: Array<[string, () => TidingsPlugin[]]> = [
  ['no plugin', () => []],
  ['a plugin that only calls next()', () => [{ name: 'pass', send: (_ctx, next) => next(), handle: (_ctx, next) => next() }]],
  ['otelPlugin, no-op provider', () => [otelPlugin()]],
  ['otelPlugin, recording every span', () => [otelPlugin({ tracerProvider: recording })]],
];

for (const [withManager, label] of [
  [false, 'no context manager'],
  [true, 'AsyncLocalStorage context manager, W3C propagator'],
] as const) {
  if (withManager) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
  }
  console.log(`\n${label}`);
  for (const [name, plugins] of runs) {
    await endToEnd(plugins()); // warm-up
    const rates = [await endToEnd(plugins()), await endToEnd(plugins()), await endToEnd(plugins())].sort((a, b) => a - b);
    const plugin = plugins()[0];
    const cost = plugin ? await wrappers(plugin).then(() => wrappers(plugin)) : undefined;
    console.log(
      `${name.padEnd(34)} ${Math.round(rates[1]!).toLocaleString('en').padStart(8)} msg/s` +
        (cost ? `   send wrapper ${cost.send.toFixed(2)} µs/msg, handle wrapper ${cost.handle.toFixed(2)} µs/msg` : ''),
    );
  }
}

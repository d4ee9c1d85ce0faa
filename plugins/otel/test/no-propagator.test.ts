import { diag, DiagLogLevel, SpanKind } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { memoryStorage } from '@tidings/adapter-memory';
import { Tidings, type Message } from '@tidings/core';
import { afterAll, describe, expect, it } from 'vitest';
import { otelPlugin } from '../src/index.js';

const warnings: string[] = [];
const noop = () => {};
diag.setLogger({ error: noop, warn: (message) => void warnings.push(message), info: noop, debug: noop, verbose: noop }, DiagLogLevel.WARN);
afterAll(() => diag.disable());

describe('otelPlugin without a registered propagator', () => {
  it('still records producer spans, writes no header, and says once through diag why consumer spans have no link', async () => {
    const exporter = new InMemorySpanExporter();
    const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
    const tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, plugins: [otelPlugin({ tracerProvider })] });
    const topic = tidings.topic<string>('no-propagator', { semantic: 'at-least-once' });
    const seen: Message<string>[] = [];
    topic.consume((m) => void seen.push(m), { pollMs: 5 });
    await topic.send('a');
    await topic.send('b');
    while (seen.length < 2) await new Promise((r) => setTimeout(r, 5));
    await tidings.close();

    expect(seen.map((m) => m.headers)).toEqual([{}, {}]);
    expect(exporter.getFinishedSpans().filter((s) => s.kind === SpanKind.PRODUCER)).toHaveLength(2);
    expect(
      exporter
        .getFinishedSpans()
        .filter((s) => s.kind === SpanKind.CONSUMER)
        .map((s) => s.links),
    ).toEqual([[], []]);
    expect(warnings).toEqual([expect.stringContaining('no propagator is registered')]);
  });
});

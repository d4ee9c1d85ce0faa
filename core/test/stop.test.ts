import type { MemoryTransaction } from '@tidings/adapter-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidOptionsError, type Logger, type Semantic, type Tidings, type TopicOptions } from '../src/index.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction>;
afterEach(() => tidings?.close({ graceMs: 0 }));

/** A logger that keeps its warnings. */
function recordingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug() {}, warn: (msg) => void warnings.push(msg), error() {} };
}

/** Whether a topic holds no message in any state. */
const isEmpty = async (topic: string) => Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0;

/** A promise resolved from outside, so a test decides when a handler returns. */
function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

const semantics: Array<[string, TopicOptions]> = [
  ['at-least-once', { semantic: 'at-least-once' as Semantic }],
  ['exactly-once', { semantic: 'exactly-once' as Semantic }],
];

describe.each(semantics)('stopping a %s consumer', (_name, options) => {
  it('aborts ctx.signal as soon as stop() is called, and waits for the handler that returns because of it', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), options);
    await topic.send('a');
    let running = false;
    let abortedWhileRunning = false;
    const consumer = topic.consume(async (_m, ctx) => {
      running = true;
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      abortedWhileRunning = ctx.signal.aborted;
    });
    await waitFor(() => running);
    await consumer.stop({ graceMs: 5_000 });

    expect(abortedWhileRunning).toBe(true);
    // It returned, so it was acked while stopping.
    expect(await isEmpty(topic.name)).toBe(true);
  });

  it('resolves after graceMs although a handler never returns; the message is never acked, and is redelivered after its lease', async () => {
    const logger = recordingLogger();
    tidings = await memoryTidings({ logger });
    const topic = tidings.topic<string>(uniqueTopic(), { ...options, leaseMs: 200 });
    await topic.send('a', { id: 'a' });
    const stuck = deferred();
    const effects: string[] = [];
    let started = false;
    const first = topic.consume(async (m, ctx) => {
      started = true;
      await stuck.promise;
      effects.push(`first:${m.attempt}`);
      (ctx.em as MemoryTransaction | undefined)?.undo.push(() => effects.splice(effects.indexOf(`first:${m.attempt}`), 1));
    });
    await waitFor(() => started);
    const stopping = Date.now();
    await first.stop({ graceMs: 100 });

    expect(Date.now() - stopping).toBeLessThan(2_000);
    expect(logger.warnings).toEqual([expect.stringContaining('consumer stopped with handlers still running after 100 ms')]);
    // The abandoned handler returns late: its outcome is not settled, so the message stays leased.
    stuck.resolve();
    await new Promise((r) => setTimeout(r, 50));
    expect((await tidings.counts(topic.name))[topic.name]).toEqual({ leased: 1 });

    const second = topic.consume(async (m) => void effects.push(`second:${m.attempt}`), { pollMs: 10 });
    await waitFor(() => isEmpty(topic.name));
    await second.stop();
    // Exactly-once rolled back the late handler's writes with its transaction; at-least-once ran its effect twice, as it may.
    expect(effects).toEqual(options.semantic === 'exactly-once' ? ['second:2'] : ['first:1', 'second:2']);
  });
});

describe('closing Tidings', () => {
  it('resolves close({ graceMs }) while a handler never returns', async () => {
    tidings = await memoryTidings({ logger: recordingLogger() });
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    await topic.send('a');
    let started = false;
    topic.consume(async () => {
      started = true;
      await new Promise(() => {});
    });
    await waitFor(() => started);
    const closing = Date.now();
    await tidings.close({ graceMs: 50 });
    expect(Date.now() - closing).toBeLessThan(2_000);
  });

  it('refuses a graceMs that is not a whole number of ms, saying what it takes', async () => {
    tidings = await memoryTidings();
    const consumer = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' }).consume(() => {});
    await expect(consumer.stop({ graceMs: -1 })).rejects.toThrow(InvalidOptionsError);
    await expect(consumer.stop({ graceMs: 1.5 })).rejects.toThrow(/stop\(\{ graceMs \}\) must be an integer from 0 to/);
    await consumer.stop();
  });
});

import type { MemoryTransaction } from '@tidings/adapter-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { InvalidMessageError, InvalidOptionsError, TopicConflictError, type Tidings } from '../src/index.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction>;
afterEach(() => tidings?.close());

describe('declaring subscriptions and ordering', () => {
  it('refuses bad subscription names and options with INVALID_OPTIONS naming the mistake', async () => {
    tidings = await memoryTidings();
    const bad: Array<[object, RegExp]> = [
      [{ subscriptions: [] }, /must name at least one/],
      [{ subscriptions: ['a', 'a'] }, /names subscription "a" twice/],
      [{ subscriptions: ['bad name'] }, /Subscription name "bad name" .* is invalid/],
      [{ subscriptions: { a: null } }, /Options of subscription "a" .* must be an object/],
      [{ subscriptions: { a: { maxDeliveries: 0 } } }, /subscription "a": maxDeliveries must be a finite number >= 1/],
      [{ ordering: 'fifo' }, /Unknown ordering "fifo" .* use 'none', 'key', 'key-strict'/],
    ];
    for (const [options, message] of bad) {
      expect(() => tidings.topic(uniqueTopic(), { semantic: 'at-least-once', ...options } as never)).toThrow(message);
    }
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once' });
    expect(() => topic.subscription('')).toThrow(InvalidOptionsError);
    expect(() => topic.subscription('s', { deadLetter: topic.name })).toThrow(/cannot dead-letter into its own topic/);
    await expect(topic.send('x', { key: '' })).rejects.toBeInstanceOf(InvalidMessageError);
    await expect(topic.sendMany(['x'], { key: 'k' as never })).rejects.toThrow(/key option must be a function/);
  });

  it('refuses a second declaration with another ordering, and adds the subscriptions a second one names', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    const first = tidings.topic(name, { semantic: 'at-least-once', ordering: 'key', subscriptions: ['a'] });
    expect(() => tidings.topic(name, { semantic: 'at-least-once' })).toThrow(TopicConflictError);
    const again = tidings.topic(name, { semantic: 'at-least-once', ordering: 'key', subscriptions: ['a', 'b'] });
    expect(again).toBe(first);
    await first.subscription('b').ready();
    expect((await first.subscriptions()).map((s) => s.name)).toEqual(['a', 'b']);
  });

  it('gives a named subscription its own limits and dead-letter topic, and the default one the topic’s', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    const topic = tidings.topic<number>(name, {
      semantic: 'at-least-once',
      maxDeliveries: 3,
      deadLetter: `${name}.dead`,
      backoff: { initialMs: 1, maxMs: 1 },
      subscriptions: { default: {}, fussy: { maxDeliveries: 1, deadLetter: `${name}.fussy.dead` }, quiet: {} },
    });
    const dead: string[] = [];
    tidings.events.on('deadLetter', (e) => dead.push(`${e.subscription} ${e.deliveries} ${e.deadLetter ?? '-'}`));
    for (const sub of ['default', 'fussy', 'quiet']) {
      topic.subscription(sub).consume(
        () => {
          throw new Error('no');
        },
        { pollMs: 5 },
      );
    }
    await topic.send(1);
    await waitFor(() => dead.length === 3);
    expect(dead.sort()).toEqual([`default 3 ${name}.dead`, `fussy 1 ${name}.fussy.dead`, 'quiet 3 -']);
    expect((await topic.subscriptions()).find((s) => s.name === 'fussy')).toMatchObject({ maxDeliveries: 1, deadLetter: `${name}.fussy.dead` });
  });
});

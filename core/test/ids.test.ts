import { memoryStorage } from '@tidings/adapter-memory';
import { describe, expect, it } from 'vitest';
import { Tidings, silentLogger } from '../src/index.js';
import { timeOrderedIds } from '../src/services.js';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('timeOrderedIds', () => {
  it('makes version 7 UUIDs carrying the millisecond they were made in', () => {
    const id = timeOrderedIds(() => 0x0192_3456_789a).next();
    expect(id).toMatch(V7);
    expect(id.slice(0, 13)).toBe('01923456-789a');
  });

  it('keeps creation order in string order, within a millisecond and past 4,096 ids in one', () => {
    let ms = 1_700_000_000_000;
    const ids = timeOrderedIds(() => ms);
    const made: string[] = [];
    for (let k = 0; k < 10_000; k++) {
      if (k % 3_000 === 2_999) ms += 1;
      made.push(ids.next());
    }
    expect([...made].sort()).toEqual(made);
    expect(new Set(made).size).toBe(made.length);
    for (const id of made) expect(id).toMatch(V7);
  });

  it('stays in order when the clock steps back', () => {
    let ms = 2_000;
    const ids = timeOrderedIds(() => ms);
    const a = ids.next();
    ms = 1_000;
    const b = ids.next();
    expect(b > a).toBe(true);
  });

  it('is what a message gets when the producer gives no id', async () => {
    const tidings = await Tidings.create({ storage: memoryStorage(), logger: silentLogger });
    try {
      const topic = tidings.topic<{ n: number }>('ids', { semantic: 'at-least-once' });
      const first = await topic.send({ n: 1 });
      const second = await topic.send({ n: 2 });
      expect(first.id).toMatch(V7);
      expect(second.id > first.id).toBe(true);
    } finally {
      await tidings.close();
    }
  });
});

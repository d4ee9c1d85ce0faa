import type { MemoryTransaction } from '@tidings/adapter-memory';
import { MemoryStorage, memoryStorage } from '@tidings/adapter-memory';
import { container as rootContainer, type InjectionToken } from 'tsyringe';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ClosedError,
  InvalidMessageError,
  InvalidOptionsError,
  InvalidTopicError,
  PayloadTooLargeError,
  Tidings,
  TidingsError,
  TopicConflictError,
  Tokens,
  type ConsumeOptions,
  type Topic,
  type TopicOptions,
} from '../src/index.js';
import type { IdempotencyStore, StoreRequest, StoreResult } from '../src/adapter.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction>;
afterEach(() => tidings?.close());

type ErrorClass = abstract new (...args: any[]) => TidingsError;

/** What a synchronous call threw; fails the test if it returned. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected the call to throw, but it returned');
}

/** What an async call rejected with; fails if it resolved, or threw synchronously instead of rejecting. */
async function rejected(fn: () => Promise<unknown>): Promise<unknown> {
  let work: Promise<unknown>;
  try {
    work = fn();
  } catch (error) {
    throw new Error(`expected a rejected promise, but the call threw synchronously: ${String(error)}`);
  }
  try {
    await work;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** The error is the typed class with its stable code, and its message matches every hint of what to fix. */
function expectTyped(error: unknown, type: ErrorClass, code: string, ...fix: RegExp[]): void {
  expect(error).toBeInstanceOf(type);
  expect(error).toBeInstanceOf(TidingsError);
  expect((error as TidingsError).code).toBe(code);
  expect((error as TidingsError).name).toBe(type.name);
  for (const hint of fix) expect((error as Error).message).toMatch(hint);
}

/** Memory storage that counts `store` calls, to prove a rejected batch never reached the storage. */
class CountingStorage extends MemoryStorage {
  stores = 0;
  override async store(req: StoreRequest): Promise<StoreResult[]> {
    this.stores++;
    return super.store(req);
  }
}

/** Memory storage without an idempotency store of its own. */
class NoIdempotencyStorage extends MemoryStorage {
  override idempotencyStore(): IdempotencyStore<MemoryTransaction> {
    return undefined as never;
  }
}

const KINDS: Array<[string, TopicOptions]> = [
  ['at-most-once', { semantic: 'at-most-once' }],
  ['at-least-once', { semantic: 'at-least-once' }],
  ['exactly-once/broker', { semantic: 'exactly-once', scope: 'broker' }],
  ['exactly-once/end-to-end', { semantic: 'exactly-once' }],
];

let good = 0;
/** Sends one good message and consumes the topic until every expected payload (and the new one) arrived. */
async function roundTrip(topic: Topic<any, any>, earlier: unknown[]): Promise<void> {
  const payload = `good-${++good}`;
  await topic.send(payload);
  const got: unknown[] = [];
  const consumer = topic.consume((m) => void got.push(m.payload), { pollMs: 5 });
  await waitFor(() => got.length >= earlier.length + 1);
  await consumer.stop();
  expect(got.map(String).sort()).toEqual([...earlier, payload].map(String).sort());
}

/**
 * An instance with messages already stored in a `keep` topic, and a check to run after bad calls:
 * nothing stored changed, and a good send + consume still delivers the earlier messages and the new one.
 */
async function withStoredMessages(options: Parameters<typeof memoryTidings>[0] = {}) {
  tidings = await memoryTidings(options);
  const keep = tidings.topic<string>(uniqueTopic('keep'), { semantic: 'at-least-once' });
  await keep.sendMany(['before-1', 'before-2']);
  const counts = await tidings.counts(keep.name);
  return {
    keep,
    async stillWorks(): Promise<void> {
      expect(await tidings.counts(keep.name)).toEqual(counts);
      await roundTrip(keep, ['before-1', 'before-2']);
    },
  };
}

describe('payloads that are not JSON', () => {
  const circular: Record<string, unknown> = { a: 1 };
  circular.self = circular;
  it.each<[string, unknown, RegExp]>([
    ['a BigInt', { amount: 10n }, /BigInt/],
    ['a circular object', circular, /circular/i],
    ['a function', () => 1, /function/],
    ['undefined', undefined, /undefined/],
    ['a symbol', Symbol('s'), /symbol/],
    ['a function inside an object', { id: 1, total: () => 42 }, /payload\.total is a function, which JSON drops/],
    ['an undefined value inside an object', { id: 1, note: undefined }, /payload\.note is undefined, which JSON drops/],
    ['an undefined item in an array', { lines: [1, undefined] }, /payload\.lines\[1\] is undefined, which JSON writes as null/],
    ['a symbol deep inside', { a: [{ b: Symbol('s') }] }, /payload\.a\[0\]\.b is a symbol/],
    ['a Map', { byId: new Map([[1, 'a']]) }, /payload\.byId is a Map, which JSON writes as \{\}/],
    ['a Set', new Set([1]), /payload is a Set/],
    ['NaN', { price: NaN }, /payload\.price is NaN, which JSON writes as null/],
    ['Infinity', Infinity, /payload is Infinity/],
  ])('%s is refused with INVALID_MESSAGE on every semantic, and the topic keeps working', async (_, payload, what) => {
    const { stillWorks } = await withStoredMessages();
    for (const [, options] of KINDS) {
      const topic = tidings.topic(uniqueTopic(), options);
      await topic.send('earlier');
      await waitFor(async () => Object.keys((await tidings.counts(topic.name))[topic.name] ?? {}).length > 0);
      const before = await tidings.counts(topic.name);
      const error = await rejected(() => topic.send(payload));
      expectTyped(error, InvalidMessageError, 'INVALID_MESSAGE', what, new RegExp(`topic "${topic.name}"`), /Send plain objects, arrays, strings/);
      expect(await tidings.counts(topic.name)).toEqual(before);
      await roundTrip(topic, ['earlier']);
    }
    await stillWorks();
  });
});

describe('payloads JSON carries as they are', () => {
  it('takes nested objects, arrays, null, unicode and a Date (as its ISO string), and delivers them as sent', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<unknown>(uniqueTopic(), { semantic: 'at-least-once' });
    const at = new Date('2026-11-27T05:00:00.000Z');
    await topic.send({ order: { id: 'o-1', lines: [{ sku: 'é☃', qty: 2, price: 0.1 }], note: null }, tags: [], at });
    const got: unknown[] = [];
    const consumer = topic.consume((m) => void got.push(m.payload));
    await waitFor(() => got.length === 1);
    await consumer.stop();
    expect(got).toEqual([{ order: { id: 'o-1', lines: [{ sku: 'é☃', qty: 2, price: 0.1 }], note: null }, tags: [], at: at.toISOString() }]);
  });
});

describe('payloads over maxPayloadBytes', () => {
  it('refuses a payload over the default 1 MiB with PAYLOAD_TOO_LARGE, and takes one exactly at the limit', async () => {
    const { keep, stillWorks } = await withStoredMessages();
    const error = await rejected(() => keep.send('x'.repeat(1024 * 1024)));
    expectTyped(error, PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', /1048578 bytes/, /limit of 1048576 bytes/, /raise maxPayloadBytes/);
    expect(error).toMatchObject({ bytes: 1024 * 1024 + 2, limit: 1024 * 1024 });
    await stillWorks();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const atLimit = 'x'.repeat(1024 * 1024 - 2);
    await topic.send(atLimit);
    const got: string[] = [];
    const consumer = topic.consume((m) => void got.push(m.payload));
    await waitFor(() => got.length === 1);
    await consumer.stop();
    expect(got[0]).toBe(atLimit);
  });

  it('counts bytes, not characters, against a custom small limit', async () => {
    const { stillWorks } = await withStoredMessages();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', maxPayloadBytes: 16 });
    await topic.send('earlier');
    const error = await rejected(() => topic.send('é'.repeat(8)));
    expectTyped(error, PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', /18 bytes/, /limit of 16 bytes/, new RegExp(`topic "${topic.name}"`));
    expectTyped(await rejected(() => topic.send({ text: 'x'.repeat(20) })), PayloadTooLargeError, 'PAYLOAD_TOO_LARGE');
    await roundTrip(topic, ['earlier']);
    await stillWorks();
  });
});

describe('topic names', () => {
  it.each<[string, unknown, RegExp]>([
    ['empty', '', /non-empty string, got an empty string.*e\.g\. "orders"/],
    ['with a leading space', ' x', /letters, digits and \. _ : -/],
    ['with a trailing space', 'x ', /letters, digits/],
    ['with a slash', 'a/b', /"a\/b" is invalid.*letters, digits/],
    ['starting with a dot', '.x', /starting with a letter or digit/],
    ['201 characters long', 'x'.repeat(201), /1-200 characters/],
    ['300 characters long', 'x'.repeat(300), /1-200 characters/],
    ['a number', 42, /non-empty string, got 42/],
    ['undefined', undefined, /non-empty string, got undefined/],
    ['null', null, /non-empty string, got null/],
    ['an object', { name: 'orders' }, /non-empty string/],
  ])('a name %s is refused with INVALID_TOPIC', async (_, name, fix) => {
    const { stillWorks } = await withStoredMessages();
    expectTyped(
      thrown(() => tidings.topic(name as string, { semantic: 'at-least-once' })),
      InvalidTopicError,
      'INVALID_TOPIC',
      fix,
    );
    await stillWorks();
  });

  it('takes a name of exactly 200 characters', async () => {
    const { stillWorks } = await withStoredMessages();
    await roundTrip(tidings.topic('a'.repeat(200), { semantic: 'at-least-once' }), []);
    await stillWorks();
  });

  it('refuses a malformed deadLetter name with INVALID_TOPIC and declares nothing', async () => {
    const { stillWorks } = await withStoredMessages();
    const name = uniqueTopic();
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'at-least-once', deadLetter: 'dead letters' })),
      InvalidTopicError,
      'INVALID_TOPIC',
      /"dead letters" is invalid/,
    );
    await roundTrip(tidings.topic(name, { semantic: 'at-most-once' }), []);
    await stillWorks();
  });
});

describe('topic options', () => {
  it.each<[string, unknown, RegExp[]]>([
    ['no options at all', undefined, [/must be an object like \{ semantic: 'at-least-once' \}/]],
    ['null options', null, [/must be an object/]],
    ['no semantic', {}, [/Unknown semantic undefined/, /use one of 'at-most-once', 'at-least-once', 'exactly-once'/]],
    ['an unknown semantic', { semantic: 'exactly-twice' }, [/Unknown semantic "exactly-twice"/, /use one of 'at-most-once', 'at-least-once', 'exactly-once'/]],
    ['an unknown scope', { semantic: 'exactly-once', scope: 'global' }, [/Unknown scope "global"/, /use 'broker' or 'end-to-end'/]],
    ['a scope on at-least-once', { semantic: 'at-least-once', scope: 'broker' }, [/scope applies only to 'exactly-once'; remove it/]],
    ['a scope on at-most-once', { semantic: 'at-most-once', scope: 'end-to-end' }, [/scope applies only to 'exactly-once'; remove it/]],
    ['leaseMs 0', { semantic: 'at-least-once', leaseMs: 0 }, [/leaseMs must be a finite number >= 1, got 0/]],
    ['a negative leaseMs', { semantic: 'at-least-once', leaseMs: -5 }, [/leaseMs must be a finite number >= 1, got -5/]],
    ['leaseMs NaN', { semantic: 'at-least-once', leaseMs: NaN }, [/leaseMs must be a finite number >= 1, got NaN/]],
    ['leaseMs as a string', { semantic: 'at-least-once', leaseMs: '1000' }, [/leaseMs must be a finite number/]],
    ['leaseMs Infinity', { semantic: 'at-least-once', leaseMs: Infinity }, [/leaseMs must be a finite number/]],
    ['maxDeliveries 0', { semantic: 'at-least-once', maxDeliveries: 0 }, [/maxDeliveries must be a finite number >= 1, got 0/]],
    ['a negative maxDeliveries', { semantic: 'exactly-once', maxDeliveries: -1 }, [/maxDeliveries must be/]],
    ['a negative dedupWindowMs', { semantic: 'exactly-once', dedupWindowMs: -1 }, [/dedupWindowMs must be a finite number >= 0, got -1/]],
    ['a negative idempotencyWindowMs', { semantic: 'exactly-once', idempotencyWindowMs: -1 }, [/idempotencyWindowMs must be/]],
    ['maxPayloadBytes 0', { semantic: 'at-least-once', maxPayloadBytes: 0 }, [/maxPayloadBytes must be a finite number >= 1/]],
    [
      'retry.maxMs below retry.initialMs',
      { semantic: 'at-least-once', retry: { initialMs: 500, maxMs: 100 } },
      [/retry\.maxMs \(100\) must be >= retry\.initialMs \(500\)/],
    ],
    [
      'backoff.maxMs below backoff.initialMs',
      { semantic: 'at-least-once', backoff: { initialMs: 500, maxMs: 100 } },
      [/backoff\.maxMs \(100\) must be >= backoff\.initialMs \(500\)/],
    ],
    ['retry.attempts 0', { semantic: 'at-least-once', retry: { attempts: 0 } }, [/retry\.attempts must be/]],
    ['a backoff factor below 1', { semantic: 'at-least-once', backoff: { factor: 0.5 } }, [/backoff\.factor must be/]],
    // Node fires a timer longer than 2^31-1 ms after 1 ms: every send would time out at once.
    ['ackTimeoutMs beyond the longest timer', { semantic: 'at-least-once', ackTimeoutMs: 2 ** 31 }, [/ackTimeoutMs must be .*<= 2147483647/]],
    ['retry.maxMs beyond the longest timer', { semantic: 'at-least-once', retry: { maxMs: 2 ** 31 } }, [/retry\.maxMs must be .*<= 2147483647/]],
  ])('%s is refused with INVALID_OPTIONS, and the name can then be declared properly', async (_, options, fix) => {
    const { stillWorks } = await withStoredMessages();
    const name = uniqueTopic();
    expectTyped(
      thrown(() => tidings.topic(name, options as TopicOptions)),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      ...fix,
    );
    await roundTrip(tidings.topic(name, { semantic: 'at-most-once' }), []);
    await stillWorks();
  });

  it('refuses a deadLetter equal to the topic, saying to name another one', async () => {
    const { stillWorks } = await withStoredMessages();
    const name = uniqueTopic();
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'at-least-once', deadLetter: name })),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      new RegExp(`"${name}" cannot be its own deadLetter`),
      new RegExp(`e\\.g\\. "${name}\\.dead"`),
    );
    await roundTrip(tidings.topic(name, { semantic: 'at-least-once' }), []);
    await stillWorks();
  });

  it('refuses exactly-once without an idempotency store, and declares no dead-letter topic for it', async () => {
    tidings = await Tidings.create({ storage: new NoIdempotencyStorage(), purgeIntervalMs: 0 });
    const name = uniqueTopic();
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'exactly-once', deadLetter: `${name}.dead` })),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      /has no idempotency store/,
      /pass \{ idempotency: memoryIdempotency\(\) \} from @tidings\/idempotency/,
    );
    // Nothing was half-declared: both names are still free for any semantic.
    await roundTrip(tidings.topic(`${name}.dead`, { semantic: 'at-most-once' }), []);
    await roundTrip(tidings.topic(name, { semantic: 'at-least-once' }), []);
  });
});

describe('consumer options', () => {
  it.each<[string, ConsumeOptions, RegExp]>([
    ['concurrency 0', { concurrency: 0 }, /concurrency must be an integer >= 1, got 0/],
    ['a negative concurrency', { concurrency: -2 }, /concurrency must be an integer >= 1/],
    ['batchSize 1.5', { batchSize: 1.5 }, /batchSize must be an integer >= 1, got 1\.5/],
    ['batchSize NaN', { batchSize: NaN }, /batchSize must be an integer >= 1, got NaN/],
    ['concurrency as a string', { concurrency: '8' as never }, /concurrency must be an integer/],
    ['pollMs 0', { pollMs: 0 }, /pollMs must be an integer >= 1/],
    ['pollMs beyond the longest timer', { pollMs: 2 ** 31 }, /pollMs must be an integer >= 1 and <= 2147483647/],
  ])('%s is refused with INVALID_OPTIONS and starts no consumer', async (_, options, fix) => {
    const { keep, stillWorks } = await withStoredMessages();
    let ran = 0;
    expectTyped(
      thrown(() => keep.consume(() => void ran++, options)),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      fix,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect(ran).toBe(0);
    await stillWorks();
  });

  it('refuses a handler that is not a function', async () => {
    const { keep, stillWorks } = await withStoredMessages();
    expectTyped(
      thrown(() => keep.consume('handler' as never)),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      /needs a handler function, got string/,
    );
    await stillWorks();
  });
});

describe('declaring a topic twice', () => {
  it('with a different semantic is refused with TOPIC_CONFLICT; the first declaration and its messages stay', async () => {
    const { stillWorks } = await withStoredMessages();
    const name = uniqueTopic();
    const first = tidings.topic(name, { semantic: 'at-least-once' });
    await first.send('earlier');
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'at-most-once' })),
      TopicConflictError,
      'TOPIC_CONFLICT',
      new RegExp(`"${name}" is already declared as at-least-once; it cannot also be at-most-once`),
      /Use another topic name, or declare it with the same semantic everywhere/,
    );
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'exactly-once' })),
      TopicConflictError,
      'TOPIC_CONFLICT',
    );
    await roundTrip(first, ['earlier']);
    await stillWorks();
  });

  it('with another exactly-once scope is a conflict too', async () => {
    await withStoredMessages();
    const name = uniqueTopic();
    tidings.topic(name, { semantic: 'exactly-once', scope: 'broker' });
    expectTyped(
      thrown(() => tidings.topic(name, { semantic: 'exactly-once' })),
      TopicConflictError,
      'TOPIC_CONFLICT',
      /already declared as exactly-once\/broker; it cannot also be exactly-once\/end-to-end/,
    );
  });

  it('with the same semantic returns the same topic', async () => {
    await withStoredMessages();
    const name = uniqueTopic();
    const a = tidings.topic(name, { semantic: 'at-least-once' });
    expect(tidings.topic(name, { semantic: 'at-least-once', leaseMs: 5_000 })).toBe(a);
    const e = tidings.topic(`${name}.e`, { semantic: 'exactly-once' });
    expect(tidings.topic(`${name}.e`, { semantic: 'exactly-once', scope: 'end-to-end' })).toBe(e);
  });

  it('an implicitly declared dead-letter topic conflicts like any other', async () => {
    await withStoredMessages();
    const name = uniqueTopic();
    tidings.topic(name, { semantic: 'at-least-once', deadLetter: `${name}.dead` });
    expectTyped(
      thrown(() => tidings.topic(`${name}.dead`, { semantic: 'at-most-once' })),
      TopicConflictError,
      'TOPIC_CONFLICT',
    );
  });
});

describe('send options', () => {
  it.each<[string, object, RegExp]>([
    ['an empty id', { id: '' }, /id must be a string of 1-200 characters, got ""/],
    ['an id of 201 characters', { id: 'i'.repeat(201) }, /id must be a string of 1-200 characters/],
    ['an id that is not a string', { id: 42 }, /id must be a string of 1-200 characters, got 42/],
    ['delayMs -1', { delayMs: -1 }, /delayMs must be a finite number >= 0, got -1/],
    ['delayMs NaN', { delayMs: NaN }, /delayMs must be a finite number >= 0, got NaN/],
    ['delayMs Infinity', { delayMs: Infinity }, /delayMs must be a finite number >= 0/],
    ['an invalid deliverAt', { deliverAt: new Date('not a date') }, /deliverAt must be a valid Date or epoch ms/],
  ])('%s is refused with INVALID_MESSAGE and stores nothing', async (_, options, fix) => {
    const { stillWorks } = await withStoredMessages();
    for (const [, kind] of KINDS) {
      const topic = tidings.topic(uniqueTopic(), kind);
      await topic.send('earlier', { id: 'earlier' });
      await waitFor(async () => Object.keys((await tidings.counts(topic.name))[topic.name] ?? {}).length > 0);
      const before = await tidings.counts(topic.name);
      expectTyped(await rejected(() => topic.send('bad', options)), InvalidMessageError, 'INVALID_MESSAGE', fix);
      await new Promise((r) => setTimeout(r, 5));
      expect(await tidings.counts(topic.name)).toEqual(before);
      await roundTrip(topic, ['earlier']);
    }
    await stillWorks();
  });

  it('takes an id of exactly 200 characters', async () => {
    const { stillWorks } = await withStoredMessages();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'exactly-once' });
    const id = 'i'.repeat(200);
    expect(await topic.send('x', { id })).toEqual({ id, duplicate: false });
    await stillWorks();
  });
});

describe('sendMany validates the whole batch before storing any of it', () => {
  it.each(KINDS)('%s: a bad item in the middle stores nothing of the batch and names the item', async (_, kind) => {
    const storage = new CountingStorage();
    const { stillWorks } = await withStoredMessages({ storage });
    const topic = tidings.topic(uniqueTopic(), { ...kind, maxPayloadBytes: 64 });
    const storesBefore = storage.stores;
    const before = await tidings.counts();

    const bigint = await rejected(() => topic.sendMany(['a', 1n, 'c']));
    expectTyped(bigint, InvalidMessageError, 'INVALID_MESSAGE', /index 1 of the batch/, /BigInt/);
    const large = await rejected(() => topic.sendMany(['a', 'b', 'x'.repeat(100), 'd']));
    expectTyped(large, PayloadTooLargeError, 'PAYLOAD_TOO_LARGE', /index 2 of the batch/);
    expect(large).toMatchObject({ index: 2 });
    const ids = ['a', '', 'c'];
    const badId = await rejected(() => topic.sendMany(['a', 'b', 'c'], { id: (_p, i) => ids[i]! }));
    expectTyped(badId, InvalidMessageError, 'INVALID_MESSAGE', /index 1 of the batch/, /1-200 characters/);
    const notAFunction = await rejected(() => topic.sendMany(['a'], { id: 'a' as never }));
    expectTyped(notAFunction, InvalidMessageError, 'INVALID_MESSAGE', /id option must be a function/, /send\(payload, \{ id \}\)/);
    const notAnArray = await rejected(() => topic.sendMany('abc' as never));
    expectTyped(notAnArray, InvalidMessageError, 'INVALID_MESSAGE', /array of payloads, got string/);

    // At-most-once stores in the background: give a stray store the chance to land before looking.
    await new Promise((r) => setTimeout(r, 20));
    expect(storage.stores).toBe(storesBefore);
    expect(await tidings.counts()).toEqual(before);

    const acks = await topic.sendMany(['a', 'b', 'c'], { id: (p) => `id-${p}` });
    expect(acks.map((a) => a.id)).toEqual(['id-a', 'id-b', 'id-c']);
    const got: string[] = [];
    const consumer = topic.consume((m) => void got.push(m.payload as string));
    await waitFor(() => got.length === 3);
    await consumer.stop();
    expect(got).toEqual(['a', 'b', 'c']);
    await stillWorks();
  });

  it('a throwing id function stores nothing', async () => {
    const storage = new CountingStorage();
    const { keep, stillWorks } = await withStoredMessages({ storage });
    const stores = storage.stores;
    await expect(
      keep.sendMany(['a', 'b'], {
        id: (_p, i) => {
          if (i === 1) throw new Error('no id for you');
          return 'ok';
        },
      }),
    ).rejects.toThrow('no id for you');
    expect(storage.stores).toBe(stores);
    await stillWorks();
  });
});

describe('a closed instance', () => {
  it('refuses send, sendMany, consume and topic with CLOSED, and close() twice is fine', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    const got: string[] = [];
    topic.consume((m) => void got.push(m.payload));
    await topic.send('before close');
    await waitFor(() => got.length === 1);

    await tidings.close();
    await expect(tidings.close()).resolves.toBeUndefined();
    await Promise.all([tidings.close(), tidings.close()]);

    const fix = /is closed\. Create a new Tidings instance \(Tidings\.create\)/;
    expectTyped(await rejected(() => topic.send('late')), ClosedError, 'CLOSED', fix);
    expectTyped(await rejected(() => topic.sendMany(['late'])), ClosedError, 'CLOSED', fix);
    expectTyped(
      thrown(() => topic.consume(() => {})),
      ClosedError,
      'CLOSED',
      fix,
    );
    expectTyped(
      thrown(() => tidings.topic(uniqueTopic(), { semantic: 'at-least-once' })),
      ClosedError,
      'CLOSED',
      fix,
    );
    expect(got).toEqual(['before close']);

    // As the message says: a new instance works.
    tidings = await memoryTidings();
    await roundTrip(tidings.topic(uniqueTopic(), { semantic: 'at-least-once' }), []);
  });

  it('an at-most-once topic also refuses sends after close', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-most-once' });
    await tidings.close();
    expectTyped(await rejected(() => topic.send('late')), ClosedError, 'CLOSED');
  });
});

describe('instance options', () => {
  it('Tidings.create without a storage is refused with INVALID_OPTIONS and registers nothing globally', async () => {
    const fix = [/needs a storage adapter/, /pass \{ storage: memoryStorage\(\) \} from @tidings\/adapter-memory/, /Tokens\.Storage/];
    expectTyped(await rejected(() => Tidings.create()), InvalidOptionsError, 'INVALID_OPTIONS', ...fix);
    expectTyped(await rejected(() => Tidings.create({ storage: undefined })), InvalidOptionsError, 'INVALID_OPTIONS', ...fix);
    expectTyped(await rejected(() => Tidings.create({ container: rootContainer.createChildContainer() })), InvalidOptionsError, 'INVALID_OPTIONS', ...fix);
    for (const token of Object.values(Tokens) as InjectionToken<unknown>[]) expect(rootContainer.isRegistered(token, true)).toBe(false);
    tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0 });
    await roundTrip(tidings.topic(uniqueTopic(), { semantic: 'at-least-once' }), []);
  });

  it.each([-1, NaN, Infinity])('purgeIntervalMs %s is refused with INVALID_OPTIONS', async (purgeIntervalMs) => {
    expectTyped(
      await rejected(() => Tidings.create({ storage: memoryStorage(), purgeIntervalMs })),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      /purgeIntervalMs must be a number >= 0/,
    );
  });

  it('redrive of an undeclared topic rejects with INVALID_OPTIONS saying to declare it', async () => {
    const { stillWorks } = await withStoredMessages();
    expectTyped(
      await rejected(() => tidings.redrive('nowhere')),
      InvalidOptionsError,
      'INVALID_OPTIONS',
      /call tidings\.topic\("nowhere", \{ semantic \}\) first/,
    );
    await stillWorks();
  });
});

describe('options with a key nothing reads', () => {
  it('refuses a mistyped option anywhere with INVALID_OPTIONS, naming the option meant and those there are', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<number>(uniqueTopic(), { semantic: 'at-least-once' });
    const cases: Array<[string, () => unknown, RegExp]> = [
      [
        'a topic',
        () => tidings.topic(uniqueTopic(), { semantic: 'at-least-once', maxDelivery: 3 } as TopicOptions),
        /Topic "t\.\d+\.\d+" has no option "maxDelivery": did you mean "maxDeliveries"\? Its options are semantic, scope, leaseMs/,
      ],
      [
        'a topic, in another case',
        () => tidings.topic(uniqueTopic(), { semantic: 'at-least-once', leasems: 5 } as TopicOptions),
        /has no option "leasems": did you mean "leaseMs"\?/,
      ],
      [
        'a subscription',
        () => topic.subscription('billing', { maxDeliverie: 2 } as never),
        /Subscription "billing" of topic .* has no option "maxDeliverie": did you mean "maxDeliveries"\?/,
      ],
      [
        'a backoff',
        () => tidings.topic(uniqueTopic(), { semantic: 'at-least-once', backoff: { intialMs: 5 } } as TopicOptions),
        /backoff has no option "intialMs": did you mean "initialMs"\?/,
      ],
      [
        'a retry',
        () => tidings.topic(uniqueTopic(), { semantic: 'at-least-once', retry: { attempt: 2 } } as TopicOptions),
        /retry has no option "attempt": did you mean "attempts"\?/,
      ],
      [
        'consume()',
        () => topic.consume(() => undefined, { concurency: 5 } as ConsumeOptions),
        /consume\(\) has no option "concurency": did you mean "concurrency"\? Its options are concurrency, batchSize, pollMs\./,
      ],
      [
        'consumeBatch()',
        () => topic.consumeBatch(() => undefined, { batchsize: 5 } as never),
        /consumeBatch\(\) has no option "batchsize": did you mean "batchSize"\?/,
      ],
      [
        'an option nothing is close to',
        () => topic.consume(() => undefined, { colour: 'red' } as never),
        /consume\(\) has no option "colour"\. Its options are/,
      ],
    ];
    for (const [what, call, message] of cases) {
      const error = thrown(call);
      expect(error, what).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message, what).toMatch(message);
    }
    const later: Array<[string, () => Promise<unknown>, RegExp]> = [
      ['send()', () => topic.send(1, { idd: 'x' } as never), /send\(\) has no option "idd": did you mean "id"\?/],
      ['sendMany()', () => topic.sendMany([1], { delay: 5 } as never), /sendMany\(\) has no option "delay"/],
      [
        'Tidings.create()',
        () => Tidings.create({ storage: memoryStorage(), purgeInterval: 0 } as never),
        /Tidings\.create\(\) has no option "purgeInterval": did you mean "purgeIntervalMs"\?/,
      ],
      [
        'browse()',
        () => topic.subscription('default').browse({ view: 'waiting', limt: 5 } as never),
        /browse\(\) has no option "limt": did you mean "limit"\?/,
      ],
    ];
    for (const [what, call, message] of later) {
      const error = await rejected(call);
      expect(error, what).toBeInstanceOf(InvalidOptionsError);
      expect((error as Error).message, what).toMatch(message);
    }
    // Nothing was sent by the refused calls.
    expect(await topic.subscription('default').counts()).toEqual({});
  });
});

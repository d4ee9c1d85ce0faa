import 'reflect-metadata';
import { MemoryStorage, memoryStorage } from '@tidings/adapter-memory';
import { memoryIdempotency } from '@tidings/idempotency';
import { container as rootContainer, inject, injectable, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ManualClock,
  StorageError,
  Tidings,
  TidingsEventBus,
  Tokens,
  type Clock,
  type IdGenerator,
  type Logger,
  type TidingsOptions,
  type TransitionEvent,
} from '../src/index.js';
import type { IdempotencyStore, StorageAdapter, StoreRequest, StoreResult } from '../src/adapter.js';
import { uniqueTopic, waitFor } from './helpers.js';

const open: Tidings<any>[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((t) => t.close()));
});

/** The parts a user can replace, each under its token. */
interface Parts {
  storage?: StorageAdapter<any>;
  clock?: Clock;
  ids?: IdGenerator;
  logger?: Logger;
  idempotency?: IdempotencyStore<any>;
}

const TOKEN_OF: Record<keyof Parts, InjectionToken<unknown>> = {
  storage: Tokens.Storage,
  clock: Tokens.Clock,
  ids: Tokens.IdGenerator,
  logger: Tokens.Logger,
  idempotency: Tokens.Idempotency,
};
const ALL_TOKENS = Object.values(Tokens) as InjectionToken<unknown>[];

/** Creates an instance with `parts` given either as Tidings.create options or registered in a parent container. */
async function create(way: 'options' | 'container', parts: Parts, extra: TidingsOptions<any> = {}): Promise<Tidings<any>> {
  const storage = parts.storage ?? memoryStorage();
  let tidings: Tidings<any>;
  if (way === 'options') {
    tidings = await Tidings.create({ ...parts, storage, purgeIntervalMs: 0, ...extra });
  } else {
    const parent = rootContainer.createChildContainer();
    for (const [key, value] of Object.entries({ ...parts, storage })) parent.register(TOKEN_OF[key as keyof Parts], { useValue: value });
    tidings = await Tidings.create({ container: parent, purgeIntervalMs: 0, ...extra });
  }
  open.push(tidings);
  return tidings;
}

/** Records every call, to prove the instance used it. */
class RecordingLogger implements Logger {
  readonly lines: Array<[string, string, object | undefined]> = [];
  debug(msg: string, data?: object): void {
    this.lines.push(['debug', msg, data]);
  }
  warn(msg: string, data?: object): void {
    this.lines.push(['warn', msg, data]);
  }
  error(msg: string, data?: object): void {
    this.lines.push(['error', msg, data]);
  }
}

/** Memory storage whose first `failures` stores fail as a retryable storage error. */
class FlakyStorage extends MemoryStorage {
  constructor(private failures = 1) {
    super();
  }
  override async store(req: StoreRequest): Promise<StoreResult[]> {
    if (this.failures-- > 0) throw new StorageError('disk busy', { code: 'STORAGE_BUSY' });
    return super.store(req);
  }
}

/** An idempotency store that records what it was asked. */
function recordingIdempotency() {
  const inner = memoryIdempotency();
  const recorded: string[] = [];
  let closed = 0;
  const store: IdempotencyStore<unknown> & { recorded: string[]; closed: () => number } = {
    name: 'recording',
    recorded,
    closed: () => closed,
    seen: (topic, ids) => inner.seen(topic, ids),
    record: (topic, ids, expiresAt) => {
      recorded.push(...ids.map((id) => `${topic}:${id}`));
      return inner.record(topic, ids, expiresAt);
    },
    purge: (now) => inner.purge(now),
    close: async () => void closed++,
  };
  return store;
}

async function consumeAll<T>(tidings: Tidings<any>, name: string, n: number, options = {}) {
  const topic = tidings.topic<T>(name, { semantic: 'at-least-once', ...options });
  const got: Array<{ id: string; payload: T; createdAt: number }> = [];
  const consumer = topic.consume((m) => void got.push(m));
  await waitFor(() => got.length === n);
  await consumer.stop();
  return got;
}

describe('one child container per instance', () => {
  it('gives each instance its own child container, event bus and storage', async () => {
    const a = await create('options', {});
    const b = await create('options', {});
    expect(a.container).not.toBe(b.container);
    expect(a.container).not.toBe(rootContainer);
    expect(a.container.resolve(Tokens.Events)).toBe(a.events);
    expect(a.events).not.toBe(b.events);
    expect(a.events).toBeInstanceOf(TidingsEventBus);
    expect(a.container.resolve(Tokens.Storage)).toBe(a.storage);
    expect(a.storage).not.toBe(b.storage);
  });

  it('two instances share no topics, messages or events, even under one parent container', async () => {
    const parent = rootContainer.createChildContainer();
    parent.register(Tokens.Clock, { useValue: new ManualClock(5_000) });
    const a = await Tidings.create({ storage: memoryStorage(), container: parent, purgeIntervalMs: 0 });
    const b = await Tidings.create({ storage: memoryStorage(), container: parent, purgeIntervalMs: 0 });
    open.push(a, b);
    expect(a.container).not.toBe(b.container);
    expect(a.container.resolve(Tokens.Clock)).toBe(b.container.resolve(Tokens.Clock));

    const name = uniqueTopic();
    // Topics: one name, two semantics, no conflict across instances.
    const inA = a.topic<string>(name, { semantic: 'at-least-once' });
    const inB = b.topic<string>(name, { semantic: 'at-most-once' });

    const eventsA: TransitionEvent[] = [];
    const eventsB: TransitionEvent[] = [];
    a.events.on('transition', (e) => eventsA.push(e));
    b.events.on('transition', (e) => eventsB.push(e));

    // Messages: what A stores, B does not hold.
    const { id } = await inA.send('only in A');
    expect((await a.counts(name))[name]).toEqual({ acked: 1 });
    expect(await b.counts(name)).toEqual({});
    expect(eventsA.map((e) => e.id)).toContain(id);
    expect(eventsB).toEqual([]);

    await inB.send('only in B');
    const gotB: string[] = [];
    const consumerB = inB.consume((m) => void gotB.push(m.payload));
    await waitFor(() => eventsB.some((e) => e.to === 'consumed'));
    await consumerB.stop();
    expect(gotB).toEqual(['only in B']);
    expect(eventsA.every((e) => e.lifecycle === 'at-least-once')).toBe(true);
    expect(eventsB.every((e) => e.lifecycle === 'at-most-once')).toBe(true);

    // Closing one leaves the other working.
    await b.close();
    expect((await consumeAll<string>(a, name, 1)).map((m) => m.payload)).toEqual(['only in A']);
  });

  it('registers nothing in tsyringe’s root container, nor in a parent container it was given', async () => {
    await create('options', {});
    const parent = rootContainer.createChildContainer();
    await Tidings.create({ storage: memoryStorage(), container: parent, purgeIntervalMs: 0 }).then((t) => open.push(t));
    for (const token of ALL_TOKENS) {
      expect(rootContainer.isRegistered(token)).toBe(false);
      expect(rootContainer.isRegistered(token, true)).toBe(false);
      expect(parent.isRegistered(token)).toBe(false);
    }
    expect(rootContainer.isRegistered(Tokens.Storage)).toBe(false);
  });
});

describe.each(['options', 'container'] as const)('replacing a part through %s', (way) => {
  it('uses the given storage', async () => {
    const storage = memoryStorage();
    const tidings = await create(way, { storage });
    expect(tidings.storage).toBe(storage);
    expect(tidings.container.resolve(Tokens.Storage)).toBe(storage);
    const name = uniqueTopic();
    await tidings.topic(name, { semantic: 'at-least-once' }).send('x');
    expect((await storage.counts(name))[name]?.default).toEqual({ acked: 1 });
  });

  it('uses the given clock: its time is every transition’s `at` and the message’s createdAt', async () => {
    const clock = new ManualClock(1_234_000);
    const tidings = await create(way, { clock });
    expect(tidings.container.resolve(Tokens.Clock)).toBe(clock);
    const events: TransitionEvent[] = [];
    tidings.events.on('transition', (e) => events.push(e));
    const name = uniqueTopic();
    await tidings.topic(name, { semantic: 'at-least-once' }).send('x');
    const [message] = await consumeAll(tidings, name, 1);
    await waitFor(() => events.some((e) => e.to === 'deleted'));
    expect(message!.createdAt).toBe(1_234_000);
    expect(events.length).toBeGreaterThanOrEqual(5);
    expect(new Set(events.map((e) => e.at))).toEqual(new Set([1_234_000]));
  });

  it('uses the given id generator: its ids are the message ids', async () => {
    let n = 0;
    const ids: IdGenerator = { next: () => `mine-${++n}` };
    const tidings = await create(way, { ids });
    expect(tidings.container.resolve(Tokens.IdGenerator)).toBe(ids);
    const name = uniqueTopic();
    const topic = tidings.topic(name, { semantic: 'at-least-once' });
    const acks = await topic.sendMany(['a', 'b']);
    expect(acks.map((a) => a.id)).toEqual(['mine-1', 'mine-2']);
    const got = await consumeAll(tidings, name, 2);
    expect(got.map((m) => m.id).sort()).toEqual(['mine-1', 'mine-2']);
  });

  it('uses the given logger: a retried send is logged through it', async () => {
    const logger = new RecordingLogger();
    const tidings = await create(way, { logger, storage: new FlakyStorage(1) });
    expect(tidings.container.resolve(Tokens.Logger)).toBe(logger);
    const name = uniqueTopic();
    const ack = await tidings.topic(name, { semantic: 'at-least-once', retry: { initialMs: 1, maxMs: 1 } }).send('x');
    expect(ack.duplicate).toBe(false);
    expect(logger.lines).toEqual([['warn', 'send not acked, retrying', expect.objectContaining({ topic: name, attempt: 1 })]]);
  });

  it('uses the given idempotency store, not the storage’s own', async () => {
    const idempotency = recordingIdempotency();
    const storage = memoryStorage();
    const tidings = await create(way, { idempotency, storage });
    expect(tidings.container.resolve(Tokens.Idempotency)).toBe(idempotency);
    const name = uniqueTopic();
    const topic = tidings.topic(name, { semantic: 'exactly-once' });
    await idempotency.record(name, ['already'], Date.now() + 60_000);
    const ran: string[] = [];
    const duplicates: string[] = [];
    tidings.events.on('duplicate', (e) => duplicates.push(`${e.by}:${e.id}`));
    const consumer = topic.consume((m) => void ran.push(m.id));
    await topic.send('new', { id: 'new' });
    await topic.send('seen before', { id: 'already' });
    await waitFor(async () => ran.length === 1 && Object.keys((await tidings.counts(name))[name] ?? {}).length === 0);
    await consumer.stop();
    expect(ran).toEqual(['new']);
    expect(duplicates).toEqual(['consumer:already']);
    expect(idempotency.recorded).toEqual([`${name}:already`, `${name}:new`]);
    expect(await storage.idempotencyStore().seen(name, ['new', 'already'])).toEqual(new Set());
    await tidings.close();
    expect(idempotency.closed()).toBe(1);
  });
});

describe('precedence and lifetimes', () => {
  it('an option wins over a registration in the parent container', async () => {
    const parent = rootContainer.createChildContainer();
    parent.register(Tokens.Clock, { useValue: new ManualClock(1) });
    const clock = new ManualClock(2);
    const tidings = await Tidings.create({ storage: memoryStorage(), clock, container: parent, purgeIntervalMs: 0 });
    open.push(tidings);
    expect(tidings.container.resolve(Tokens.Clock)).toBe(clock);
    expect(parent.resolve(Tokens.Clock).now()).toBe(1);
  });

  it('a class registered with useClass gives the instance one storage and one idempotency store, built with its clock', async () => {
    const made: CountedStorage[] = [];
    const stores: unknown[] = [];

    @injectable()
    class CountedStorage extends MemoryStorage {
      opened = 0;
      closes = 0;
      constructor(@inject(Tokens.Clock) readonly clock: Clock) {
        super();
        made.push(this);
      }
      async open(): Promise<void> {
        this.opened++;
      }
      override async close(): Promise<void> {
        this.closes++;
        await super.close();
      }
    }
    @injectable()
    class CountedIdempotency {
      readonly name = 'counted';
      private readonly inner = memoryIdempotency();
      closed = 0;
      constructor() {
        stores.push(this);
      }
      seen(topic: string, ids: string[]) {
        return this.inner.seen(topic, ids);
      }
      record(topic: string, ids: string[], expiresAt: number) {
        return this.inner.record(topic, ids, expiresAt);
      }
      purge(now: number) {
        return this.inner.purge(now);
      }
      async close() {
        this.closed++;
      }
    }

    const parent: DependencyContainer = rootContainer.createChildContainer();
    parent.register(Tokens.Storage, { useClass: CountedStorage });
    parent.register(Tokens.Idempotency, { useClass: CountedIdempotency as never });
    const clock = new ManualClock(42_000);
    const tidings = await Tidings.create({ container: parent, clock, purgeIntervalMs: 0 });
    open.push(tidings);

    const name = uniqueTopic();
    const topic = tidings.topic(name, { semantic: 'exactly-once' });
    await topic.send('x', { id: 'x' });
    expect((await tidings.counts(name))[name]).toEqual({ acked: 1 });
    const got: string[] = [];
    const consumer = topic.consume((m) => void got.push(m.id));
    await waitFor(() => got.length === 1);
    await consumer.stop();
    await tidings.purge();
    await tidings.close();

    expect(made).toHaveLength(1);
    expect(tidings.storage).toBe(made[0]);
    expect(made[0]!.clock).toBe(clock);
    expect(made[0]!).toMatchObject({ opened: 1, closes: 1 });
    expect(stores).toHaveLength(1);
    expect(stores[0]).toMatchObject({ closed: 1 });
  });
});

describe('user classes resolved from tidings.container', () => {
  @injectable()
  class Stamper {
    constructor(@inject(Tokens.Clock) private readonly clock: Clock) {}
    stamp(): number {
      return this.clock.now();
    }
  }

  @injectable()
  class Audit {
    // `stamper` is injected by its type, read from decorator metadata; the rest by token.
    constructor(
      readonly stamper: Stamper,
      @inject(Tokens.Events) readonly events: TidingsEventBus,
      @inject(Tokens.Storage) readonly storage: StorageAdapter,
    ) {}
  }

  it('injects the instance’s parts into an @injectable() class with @inject(Tokens.*)', async () => {
    const clock = new ManualClock(7_000);
    const tidings = await create('options', { clock });
    const stamper = tidings.container.resolve(Stamper);
    expect(stamper).toBeInstanceOf(Stamper);
    expect(stamper.stamp()).toBe(7_000);
    clock.advance(1);
    expect(stamper.stamp()).toBe(7_001);
  });

  it('resolves constructor parameters by type through emitted decorator metadata', async () => {
    expect(Reflect.getMetadata('design:paramtypes', Audit)?.[0]).toBe(Stamper);
    const tidings = await create('options', { clock: new ManualClock(9_000) });
    const audit = tidings.container.resolve(Audit);
    expect(audit.stamper).toBeInstanceOf(Stamper);
    expect(audit.stamper.stamp()).toBe(9_000);
    expect(audit.events).toBe(tidings.events);
    expect(audit.storage).toBe(tidings.storage);
    const other = await create('options', {});
    expect(other.container.resolve(Audit).events).toBe(other.events);
    expect(other.container.resolve(Audit).events).not.toBe(audit.events);
  });
});

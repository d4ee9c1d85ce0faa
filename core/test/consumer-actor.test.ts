import { memoryStorage, type MemoryTransaction } from '@tidings/adapter-memory';
import { afterEach, describe, expect, it } from 'vitest';
import { Tidings, type Semantic, type TransitionEvent } from '../src/index.js';
import { decorateStorage, type ExpireRequest, type ReleaseRequest } from '../src/adapter.js';
import { consumerMachine } from '../src/delivery/consumer-machine.js';
import { memoryTidings, uniqueTopic, waitFor } from './helpers.js';

let tidings: Tidings<MemoryTransaction> | undefined;
afterEach(() => tidings?.close({ graceMs: 0 }));

/** Memory storage that counts the requests it is given. */
function countingStorage() {
  const inner = memoryStorage();
  const calls = { release: [] as ReleaseRequest[], expire: [] as ExpireRequest[] };
  const storage = decorateStorage(inner, {
    release: (req: ReleaseRequest, tx?: MemoryTransaction) => (calls.release.push(req), inner.release(req, tx)),
    expire: (req: ExpireRequest, tx?: MemoryTransaction) => (calls.expire.push(req), inner.expire(req, tx)),
  });
  return { storage, calls };
}

describe('the consumer actor', () => {
  it('goes through its states per batch: starting, leasing, handling, idle, draining, stopped', async () => {
    tidings = await memoryTidings();
    const topic = tidings.topic<string>(uniqueTopic(), { semantic: 'at-least-once' });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const consumer = topic.consume(() => gate, { pollMs: 60_000 });
    await waitFor(() => consumer.state === 'idle');
    await topic.send('a');
    await waitFor(() => consumer.state === 'handling');
    const stopping = consumer.stop({ graceMs: 5_000 });
    expect(consumer.state).toBe('draining');
    release();
    await stopping;
    expect(consumer.state).toBe('stopped');
    expect(Object.keys((await tidings.counts(topic.name))[topic.name] ?? {})).toEqual([]);
  });

  it('is one machine whose states and events can be drawn beside the message machines', () => {
    expect(Object.keys(consumerMachine.root.states).sort()).toEqual(['draining', 'handling', 'idle', 'leasing', 'paused', 'starting', 'stopped']);
    expect(consumerMachine.root.states.draining!.after.map((t) => t.target?.[0]?.key)).toEqual(['stopped']);
  });

  it('stops at once when its topic could not be declared, reporting why', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    await tidings.storage.declareTopic({ name, lifecycle: 'exactly-once/broker', maxDeliveries: 5, declaredAt: 0 });
    const errors: unknown[] = [];
    tidings.events.on('error', (e) => errors.push(e.error));
    const consumer = tidings.topic(name, { semantic: 'at-least-once' }).consume(() => {});
    await waitFor(() => consumer.state === 'stopped');
    expect(errors).toEqual([expect.objectContaining({ code: 'TOPIC_CONFLICT' })]);
    await consumer.stop();
  });
});

describe('settling', () => {
  it.each(['at-least-once', 'exactly-once'] as Semantic[])('%s: nacks a failing batch in one release, not one per message', async (semantic) => {
    const { storage, calls } = countingStorage();
    tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic<number>(uniqueTopic(), { semantic, backoff: { initialMs: 60_000, maxMs: 60_000 } });
    await topic.sendMany(Array.from({ length: 10 }, (_, i) => i));
    let failed = 0;
    topic.consume(
      () => {
        failed++;
        throw new Error('declined');
      },
      { batchSize: 10, concurrency: 10 },
    );
    // Exactly-once runs a batch's handlers in one transaction; when several fail, each is tried once more on its own
    // (on PostgreSQL one failed statement fails its neighbours' too), so its handlers run twice.
    const runs = semantic === 'exactly-once' ? 20 : 10;
    await waitFor(
      async () =>
        ((await tidings!.counts(topic.name))[topic.name]?.acked ?? (await tidings!.counts(topic.name))[topic.name]?.stored ?? 0) === 10 && failed === runs,
    );
    expect(failed).toBe(runs);
    expect(calls.release).toHaveLength(1);
    expect(calls.release[0]!.items).toHaveLength(10);
  });

  it('copies a dead letter into its dead-letter topic, with its STORE transitions, and wakes that topic’s consumers', async () => {
    tidings = await memoryTidings();
    const name = uniqueTopic();
    const topic = tidings.topic<string>(name, { semantic: 'at-least-once', maxDeliveries: 1, deadLetter: `${name}.dead` });
    const transitions: TransitionEvent[] = [];
    tidings.events.on('transition', (t) => void (t.topic === `${name}.dead` && transitions.push(t)));
    const dead: string[] = [];
    // Its poll is a minute away: only a wake-up delivers the copy within the test.
    const dlqConsumer = tidings.topic<string>(`${name}.dead`, { semantic: 'at-least-once' }).consume((m) => void dead.push(m.payload), { pollMs: 60_000 });
    await waitFor(() => dlqConsumer.state === 'idle');
    await topic.send('poison', { id: 'p-1' });
    topic.consume(() => {
      throw new Error('declined');
    });
    await waitFor(() => dead.length === 1, 2_000);
    expect(dead).toEqual(['poison']);
    expect(transitions.slice(0, 2).map((t) => `${t.from} ${t.event} ${t.to}`)).toEqual(['sent STORE stored', 'stored ACK acked']);
    expect(transitions.every((t) => t.id === 'p-1')).toBe(true);
  });

  it('shares one lease sweeper among the consumers of a topic in one process', async () => {
    const { storage, calls } = countingStorage();
    tidings = await Tidings.create({ storage, purgeIntervalMs: 0 });
    const topic = tidings.topic(uniqueTopic(), { semantic: 'at-least-once', leaseMs: 4_000 });
    const consumers = Array.from({ length: 4 }, () => topic.consume(() => {}, { pollMs: 5 }));
    await new Promise((r) => setTimeout(r, 400));
    await Promise.all(consumers.map((c) => c.stop()));
    // One sweep (a requeue and a dead-letter request) per second at most, whatever the number of consumers.
    expect(calls.expire.length).toBeGreaterThan(0);
    expect(calls.expire.length).toBeLessThanOrEqual(2);
  });
});

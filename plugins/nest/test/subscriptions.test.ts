import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Tidings, type BatchContext, type DeadLetterEvent, type Message, type Topic } from '@tidings/core';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { Consumer, OnMessage, OnTidingsEvent, TidingsModule, getTopicToken, type BatchConsumer, type MessageConsumer } from '@tidings/nest';
import { RecordingLogger, sleep, uniqueTopic, waitFor } from './support.js';

/** One message of an ordered topic: its key, and its place among the key's messages. */
interface Step {
  account: string;
  seq: number;
}

const dir = mkdtempSync(join(tmpdir(), 'tidings-nest-subs-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** TidingsModule.forRoot on a SQLite file of its own. */
const root = () => TidingsModule.forRoot({ storage: sqliteStorage({ file: join(dir, `subs-${++files}.db`) }), purgeIntervalMs: 0 });

const apps: INestApplicationContext[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

async function start(metadata: { imports: any[]; providers?: any[] }, logger = new RecordingLogger()) {
  const moduleRef = await Test.createTestingModule(metadata).setLogger(logger).compile();
  apps.push(moduleRef);
  await moduleRef.init();
  return moduleRef;
}

/** What one subscription's handler saw: the order per key, the subscriptions it was handed, and any overlap within a key. */
class Journal {
  readonly done: string[] = [];
  readonly subscriptions = new Set<string>();
  readonly overlaps: string[] = [];
  widest = 0;
  private readonly running = new Set<string>();

  async handle(message: Message<Step>): Promise<void> {
    const { account, seq } = message.payload;
    this.subscriptions.add(message.subscription);
    if (this.running.has(account)) this.overlaps.push(`${account}#${seq}`);
    this.running.add(account);
    this.widest = Math.max(this.widest, this.running.size);
    try {
      // Some first deliveries fail: the retry must still come before the key's next message.
      if (seq % 3 === 1 && message.attempt === 1) throw new Error('try again');
      await sleep(2);
      this.done.push(`${message.key}:${seq}`);
    } finally {
      this.running.delete(account);
    }
  }

  /** How many messages it handled. */
  get handled(): number {
    return new Set(this.done).size;
  }

  /**
   * The seqs of `account` in the order they were handled. A failure rolls back its batch's transaction, so a message
   * may be handled again before its key moves on (never after): such a repeat counts once.
   */
  order(account: string): number[] {
    return this.done
      .filter((d) => d.startsWith(`${account}:`))
      .filter((d, i, all) => d !== all[i - 1])
      .map((d) => Number(d.split(':')[1]));
  }
}

describe('subscriptions and ordering keys in a Nest application (SQLite file)', () => {
  it(
    'hands every message of an ordered topic to a consumer of each subscription, one at a time per key in the order sent, other keys alongside',
    { timeout: 30_000 },
    async () => {
      const topic = uniqueTopic('subs');
      const billing = new Journal();
      const shipping = new Journal();

      @Consumer(topic, { subscription: 'billing', concurrency: 4, batchSize: 10, pollMs: 10 })
      class BillingConsumer implements MessageConsumer<Step> {
        handle(message: Message<Step>) {
          return billing.handle(message);
        }
      }

      @Injectable()
      class Shipping {
        @OnMessage(topic, { subscription: 'shipping', concurrency: 4, batchSize: 10, pollMs: 10 })
        ship(message: Message<Step>) {
          return shipping.handle(message);
        }
      }

      const app = await start({
        imports: [
          root(),
          TidingsModule.forFeature([
            { name: topic, semantic: 'exactly-once', ordering: 'key', subscriptions: ['billing', 'shipping'], backoff: { initialMs: 1, maxMs: 5 } },
          ]),
        ],
        providers: [BillingConsumer, Shipping],
      });
      const steps = app.get<Topic<Step>>(getTopicToken(topic));
      const accounts = ['a', 'b', 'c', 'd'];
      const perAccount = 5;
      for (let seq = 0; seq < perAccount; seq++) {
        await steps.sendMany(
          accounts.map((account) => ({ account, seq })),
          { id: (s) => `${s.account}-${s.seq}`, key: (s) => s.account },
        );
      }
      const total = accounts.length * perAccount;
      await waitFor(
        async () => billing.handled === total && shipping.handled === total && Object.keys((await app.get(Tidings).counts(topic))[topic] ?? {}).length === 0,
        20_000,
      );

      for (const [name, journal] of [
        ['billing', billing],
        ['shipping', shipping],
      ] as const) {
        expect(journal.subscriptions, name).toEqual(new Set([name]));
        expect(journal.overlaps, name).toEqual([]);
        for (const account of accounts) expect(journal.order(account), `${name} ${account}`).toEqual([0, 1, 2, 3, 4]);
      }
      expect(Math.max(billing.widest, shipping.widest)).toBeGreaterThan(1);
      const tidings = app.get(Tidings);
      expect((await tidings.topics()).find((t) => t.name === topic)).toMatchObject({ lifecycle: 'exactly-once/end-to-end', ordering: 'key' });
      expect((await tidings.subscriptions(topic)).map((s) => s.name)).toEqual(['billing', 'shipping']);
    },
  );

  it('gives each subscription its options from forFeature: one dead-letters to its own topic after its own deliveries while the other consumes', async () => {
    const topic = uniqueTopic('subs');
    const shipped: string[] = [];
    const dead: DeadLetterEvent[] = [];

    @Consumer(topic, { subscription: 'billing', pollMs: 10 })
    class Billing {
      handle() {
        throw new Error('card processor down');
      }
    }

    @Consumer(topic, { subscription: 'shipping', pollMs: 10 })
    class Shipping {
      handle(message: Message<{ n: number }>) {
        shipped.push(`${message.subscription} ${message.id}`);
      }
    }

    @Injectable()
    class Alerts {
      @OnTidingsEvent('deadLetter')
      onDead(event: DeadLetterEvent) {
        dead.push(event);
      }
    }

    const app = await start({
      imports: [
        root(),
        TidingsModule.forFeature([
          {
            name: topic,
            semantic: 'at-least-once',
            backoff: { initialMs: 1, maxMs: 1 },
            subscriptions: { billing: { maxDeliveries: 2, deadLetter: `${topic}.billing.dead` }, shipping: {} },
          },
        ]),
      ],
      providers: [Billing, Shipping, Alerts],
    });
    await app.get<Topic<{ n: number }>>(getTopicToken(topic)).send({ n: 1 }, { id: 'm-1' });
    await waitFor(() => dead.length === 1 && shipped.length === 1);

    expect(shipped).toEqual(['shipping m-1']);
    expect(dead[0]).toMatchObject({ id: 'm-1', topic, subscription: 'billing', deadLetter: `${topic}.billing.dead`, deliveries: 2 });
    const tidings = app.get(Tidings);
    expect((await tidings.deadLetters(topic, 10, { subscription: 'billing' })).map((m) => m.id)).toEqual(['m-1']);
    expect((await tidings.counts(`${topic}.billing.dead`))[`${topic}.billing.dead`]).toEqual({ acked: 1 });
  });

  it('takes the subscriptions of every module that declares the topic, so each feature module declares the one it reads', async () => {
    const topic = uniqueTopic('subs');
    const seen: string[] = [];

    @Consumer(topic, { subscription: 'billing', pollMs: 10 })
    class BillingConsumer {
      handle(message: Message<string>) {
        seen.push(`billing ${message.payload}`);
      }
    }

    @Consumer(topic, { pollMs: 10 })
    class AuditConsumer {
      handle(message: Message<string>) {
        seen.push(`${message.subscription} ${message.payload}`);
      }
    }

    @Module({
      imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', ordering: 'key', subscriptions: ['billing'] }])],
      providers: [BillingConsumer],
    })
    class BillingModule {}

    // Lists no subscriptions: its consumers read the default one, which the topic now has too.
    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', ordering: 'key' }])], providers: [AuditConsumer] })
    class AuditModule {}

    const app = await start({ imports: [root(), BillingModule, AuditModule] });
    await app.get<Topic<string>>(getTopicToken(topic)).send('order-1', { key: 'acme' });
    await waitFor(() => seen.length === 2);
    expect(seen.sort()).toEqual(['billing order-1', 'default order-1']);
    expect((await app.get(Tidings).subscriptions(topic)).map((s) => s.name)).toEqual(['billing', 'default']);
  });
});

describe('batch consumers in a Nest application (SQLite file)', () => {
  it(
    'hands a @Consumer({ batch: true }) class and an @OnMessage({ batch: true }) method the leased batches, each message once',
    { timeout: 30_000 },
    async () => {
      const name = uniqueTopic();
      const batches: Record<string, number[][]> = { billing: [], shipping: [] };

      @Injectable()
      @Consumer(name, { subscription: 'billing', batch: true, batchSize: 8 })
      class Billing implements BatchConsumer<number> {
        handle(messages: Message<number>[]) {
          batches.billing!.push(messages.map((m) => m.payload));
        }
      }

      @Injectable()
      class Shipping {
        @OnMessage(name, { subscription: 'shipping', batch: true, batchSize: 5 })
        ship(messages: Message<number>[], ctx: BatchContext) {
          // The first batch's first message fails alone; it comes back, the rest are acked.
          if (batches.shipping!.length === 0) ctx.fail(messages[0]!);
          batches.shipping!.push(messages.map((m) => m.payload));
        }
      }

      @Module({
        imports: [TidingsModule.forFeature([{ name, semantic: 'exactly-once', subscriptions: ['billing', 'shipping'], backoff: { initialMs: 1, maxMs: 2 } }])],
        providers: [Billing, Shipping],
      })
      class Feature {}

      const app = await start({ imports: [root(), Feature] });
      const topic = app.get<Topic<number>>(getTopicToken(name));
      await topic.sendMany(
        Array.from({ length: 20 }, (_, i) => i),
        { id: (p) => `m${p}` },
      );
      const handled = (sub: string) => new Set(batches[sub]!.flat()).size;
      await waitFor(() => handled('billing') === 20 && handled('shipping') === 20 && batches.shipping!.flat().length === 21);
      expect(Math.max(...batches.billing!.map((b) => b.length))).toBeLessThanOrEqual(8);
      expect(Math.max(...batches.shipping!.map((b) => b.length))).toBeLessThanOrEqual(5);
      expect(batches.billing!.flat().length).toBe(20);
    },
  );
});

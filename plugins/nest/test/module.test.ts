import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Tidings, type ConsumeContext, type DeadLetterEvent, type Message, type TidingsPlugin, type Topic } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { Consumer, InjectTidings, InjectTopic, OnMessage, OnTidingsEvent, TIDINGS, TidingsModule, getTopicToken, type MessageConsumer } from '@tidings/nest';
import { RecordingLogger, sleep, uniqueTopic, waitFor } from './support.js';

interface Order {
  id: number;
}

const apps: INestApplicationContext[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((app) => app.close()));
});

/** Compiles and initialises an application context of `imports` and `providers`, closed after the test. */
async function start(metadata: { imports: any[]; providers?: any[] }, logger = new RecordingLogger()) {
  const moduleRef = await Test.createTestingModule(metadata).setLogger(logger).compile();
  apps.push(moduleRef);
  await moduleRef.init();
  return moduleRef;
}

describe('TidingsModule', () => {
  it('injects the instance by class and by token, and a declared topic with @InjectTopic', async () => {
    const topic = uniqueTopic();

    @Injectable()
    class OrdersService {
      constructor(
        @InjectTopic(topic) readonly orders: Topic<Order>,
        @InjectTidings() readonly byToken: Tidings,
        readonly byClass: Tidings,
      ) {}
    }

    const app = await start({
      imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
      providers: [OrdersService],
    });
    const service = app.get(OrdersService);
    expect(service.byClass).toBeInstanceOf(Tidings);
    expect(service.byToken).toBe(service.byClass);
    expect(app.get(TIDINGS)).toBe(service.byClass);
    expect(service.orders.name).toBe(topic);
    expect(app.get(getTopicToken(topic))).toBe(service.orders);

    const ack = await service.orders.send({ id: 1 }, { id: 'order-1' });
    expect(ack).toEqual({ id: 'order-1', duplicate: false });
    expect(await service.byClass.counts(topic)).toEqual({ [topic]: { acked: 1 } });
  });

  it('passes forRoot({ plugins }) to the instance: a plugin adds a header on send and wraps the @Consumer handler', async () => {
    const topic = uniqueTopic();
    const seen: string[] = [];
    const plugin: TidingsPlugin = {
      name: 'tenant',
      send: (ctx, next) => {
        for (const m of ctx.messages) m.headers['x-tenant'] = 'acme';
        return next();
      },
      handle: async (ctx, next) => {
        seen.push(`before ${ctx.topic}`);
        await next();
        seen.push('after');
      },
    };

    @Consumer(topic)
    class TenantConsumer implements MessageConsumer<Order> {
      async handle(message: Message<Order>) {
        seen.push(`handler ${message.payload.id} ${message.headers['x-tenant']}`);
      }
    }

    const app = await start({
      imports: [TidingsModule.forRoot({ storage: memoryStorage(), plugins: [plugin] }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
      providers: [TenantConsumer],
    });
    await app.get<Topic<Order>>(getTopicToken(topic)).send({ id: 7 });
    await waitFor(() => seen.length === 3);
    expect(seen).toEqual([`before ${topic}`, 'handler 7 acme', 'after']);
  });

  it('runs a @Consumer class’s handle and an @OnMessage method for every message, from bootstrap on', async () => {
    const a = uniqueTopic();
    const b = uniqueTopic();
    const handled: string[] = [];

    @Consumer(a, { concurrency: 2 })
    class OrdersConsumer implements MessageConsumer<Order> {
      async handle(message: Message<Order>) {
        handled.push(`class ${message.topic} ${message.payload.id}`);
      }
    }

    @Injectable()
    class Billing {
      @OnMessage(b)
      async bill(message: Message<Order>, ctx: ConsumeContext) {
        expect(ctx.signal).toBeInstanceOf(AbortSignal);
        handled.push(`method ${message.topic} ${message.payload.id}`);
      }
    }

    @Module({ imports: [TidingsModule.forFeature([{ name: a, semantic: 'exactly-once' }])], providers: [OrdersConsumer] })
    class OrdersModule {}

    @Module({ imports: [TidingsModule.forFeature([{ name: b, semantic: 'at-least-once' }])], providers: [Billing] })
    class BillingModule {}

    const app = await start({ imports: [TidingsModule.forRoot({ storage: memoryStorage() }), OrdersModule, BillingModule] });
    await app.get<Topic<Order>>(getTopicToken(a)).sendMany([{ id: 1 }, { id: 2 }]);
    await app.get<Topic<Order>>(getTopicToken(b)).send({ id: 3 });
    await waitFor(() => handled.length === 3);
    expect(handled.sort()).toEqual([`class ${a} 1`, `class ${a} 2`, `method ${b} 3`].sort());
  });

  it('applies topicDefaults under each declaration, and takes options from forRootAsync', async () => {
    const topic = uniqueTopic();
    const dead: DeadLetterEvent[] = [];

    @Injectable()
    class Failing {
      @OnMessage(topic, { pollMs: 5 })
      fail() {
        throw new Error('always');
      }
      @OnTidingsEvent('deadLetter')
      onDead(e: DeadLetterEvent) {
        dead.push(e);
      }
    }

    @Module({ providers: [{ provide: 'STORAGE', useFactory: () => memoryStorage() }], exports: ['STORAGE'] })
    class ConfigModule {}

    const app = await start({
      imports: [
        TidingsModule.forRootAsync({
          imports: [ConfigModule],
          inject: ['STORAGE'],
          useFactory: async (storage) => ({ storage, topicDefaults: { maxDeliveries: 2, backoff: { initialMs: 1, maxMs: 1 } } }),
        }),
        TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }]),
      ],
      providers: [Failing],
    });
    await app.get<Topic>(getTopicToken(topic)).send({ id: 1 });
    await waitFor(() => dead.length === 1);
    expect(dead[0]).toMatchObject({ topic, deliveries: 2 });
  });

  it('gives every topic a dead-letter topic shared through topicDefaults, except the dead-letter topic itself', async () => {
    const orders = uniqueTopic();
    const dead = `${orders}.dead`;
    const dlq: string[] = [];

    @Injectable()
    class Graveyard {
      @OnMessage(orders, { pollMs: 5 })
      refuse() {
        throw new Error('refused');
      }
      @OnMessage(dead)
      bury(message: Message) {
        dlq.push(message.id);
      }
    }

    const app = await start({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage(), topicDefaults: { deadLetter: dead, maxDeliveries: 1 } }),
        TidingsModule.forFeature([
          { name: orders, semantic: 'at-least-once' },
          { name: dead, semantic: 'at-least-once' },
        ]),
      ],
      providers: [Graveyard],
    });
    await app.get<Topic>(getTopicToken(orders)).send({ id: 1 }, { id: 'order-1' });
    await waitFor(() => dlq.length === 1);
    expect(dlq).toEqual(['order-1']);
  });

  it('calls @OnTidingsEvent("deadLetter") once a message used up maxDeliveries', async () => {
    const topic = uniqueTopic();
    const seen: Array<[string, number]> = [];
    const dead: DeadLetterEvent[] = [];

    @Consumer(topic, { pollMs: 5 })
    class Refuser {
      handle(message: Message<Order>) {
        seen.push([message.id, message.attempt]);
        throw new Error('refused');
      }
    }

    @Injectable()
    class Alerts {
      @OnTidingsEvent('deadLetter')
      async onDeadLetter(event: DeadLetterEvent) {
        dead.push(event);
      }
    }

    const app = await start({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage() }),
        TidingsModule.forFeature([
          { name: topic, semantic: 'at-least-once', maxDeliveries: 3, deadLetter: `${topic}.dead`, backoff: { initialMs: 1, maxMs: 1 } },
        ]),
      ],
      providers: [Refuser, Alerts],
    });
    await app.get<Topic<Order>>(getTopicToken(topic)).send({ id: 7 }, { id: 'order-7' });
    await waitFor(() => dead.length === 1);
    expect(seen).toEqual([
      ['order-7', 1],
      ['order-7', 2],
      ['order-7', 3],
    ]);
    expect(dead[0]).toMatchObject({ id: 'order-7', topic, deadLetter: `${topic}.dead`, deliveries: 3 });
    expect((await app.get(Tidings).deadLetters(topic)).map((m) => m.id)).toEqual(['order-7']);
  });

  it('logs a throwing @OnTidingsEvent method instead of letting it break delivery', async () => {
    const topic = uniqueTopic();
    const handled: number[] = [];

    @Injectable()
    class Noisy {
      @OnMessage(topic)
      handle(message: Message<Order>) {
        handled.push(message.payload.id);
      }
      @OnTidingsEvent('transition')
      onTransition() {
        throw new Error('listener bug');
      }
    }

    const logger = new RecordingLogger();
    const app = await start(
      {
        imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
        providers: [Noisy],
      },
      logger,
    );
    await app.get<Topic<Order>>(getTopicToken(topic)).send({ id: 1 });
    await waitFor(() => handled.length === 1);
    expect(String(logger.errors[0]?.[0])).toContain(`@OnTidingsEvent('transition') Noisy.onTransition failed: listener bug`);
  });
});

describe('shutdown', () => {
  it('drains a handler in flight on app.close(), stops consuming, then closes the instance; nothing is lost or logged', async () => {
    const topic = uniqueTopic();
    const started: number[] = [];
    const finished: number[] = [];

    @Consumer(topic, { concurrency: 4, batchSize: 4 })
    class Slow {
      async handle(message: Message<Order>) {
        started.push(message.payload.id);
        await sleep(200);
        finished.push(message.payload.id);
      }
    }

    const logger = new RecordingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
      providers: [Slow],
    })
      .setLogger(logger)
      .compile();
    await moduleRef.init();
    const tidings = moduleRef.get(Tidings);
    const orders = moduleRef.get<Topic<Order>>(getTopicToken(topic));
    await orders.sendMany([{ id: 1 }, { id: 2 }, { id: 3 }]);
    await waitFor(() => started.length === 3);
    const counts = await tidings.counts(topic);
    expect(counts[topic]).toEqual({ leased: 3 });

    await moduleRef.close();
    expect(finished.sort()).toEqual([1, 2, 3]);
    expect(logger.errors).toEqual([]);
    // The instance is closed with the application: nothing more goes through it.
    await expect(orders.send({ id: 4 })).rejects.toMatchObject({ code: 'CLOSED' });
    expect(started).toHaveLength(3);
  });

  it('aborts ctx.signal on app.close(), and closes after shutdownGraceMs although a handler never returns', async () => {
    const topic = uniqueTopic();
    let signal: AbortSignal | undefined;

    @Consumer(topic)
    class Stuck {
      async handle(_message: Message<Order>, ctx: ConsumeContext) {
        signal = ctx.signal;
        await new Promise(() => {}); // ignores the signal: only the grace period ends the wait
      }
    }

    const logger = new RecordingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage(), shutdownGraceMs: 100 }),
        TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }]),
      ],
      providers: [Stuck],
    })
      .setLogger(logger)
      .compile();
    await moduleRef.init();
    await moduleRef.get<Topic<Order>>(getTopicToken(topic)).send({ id: 1 });
    await waitFor(() => signal !== undefined);
    const closing = Date.now();
    await moduleRef.close();

    expect(Date.now() - closing).toBeLessThan(3_000);
    expect(signal!.aborted).toBe(true);
    expect(logger.warnings.map((w) => String(w[0]))).toEqual([expect.stringContaining('consumer stopped with handlers still running after 100 ms')]);
  });
});

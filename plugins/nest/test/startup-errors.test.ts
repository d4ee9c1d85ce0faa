import { Controller, Injectable, Module, Scope, type INestApplicationContext } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { ClosedError, InvalidOptionsError, InvalidTopicError, Tidings, TidingsError, TopicConflictError, type Message } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { Consumer, NestSetupError, OnMessage, OnTidingsEvent, TidingsModule } from '@tidings/nest';
import { RecordingLogger, uniqueTopic } from './support.js';

const apps: INestApplicationContext[] = [];
afterEach(async () => {
  // close() rethrows the failed start, and runs no shutdown hook after it.
  await Promise.all(apps.splice(0).map((app) => app.close().catch(() => undefined)));
});

/** Compiles and initialises `metadata`; resolves to the error start-up failed with (and the app, if it compiled). */
async function failedStart(metadata: {
  imports?: any[];
  providers?: any[];
  controllers?: any[];
}): Promise<{ error: TidingsError; app?: INestApplicationContext }> {
  let app: INestApplicationContext | undefined;
  try {
    app = await Test.createTestingModule(metadata).setLogger(new RecordingLogger()).compile();
    apps.push(app);
    await app.init();
  } catch (error) {
    expect(error).toBeInstanceOf(TidingsError);
    return { error: error as TidingsError, app };
  }
  throw new Error('the application started');
}

const startupError = async (metadata: Parameters<typeof failedStart>[0]) => (await failedStart(metadata)).error;

const root = () => TidingsModule.forRoot({ storage: memoryStorage() });

describe('start-up errors name what to fix', () => {
  it('STORAGE_MISSING: forRoot without a storage adapter', async () => {
    const error = await startupError({ imports: [TidingsModule.forRoot({})] });
    expect(error).toBeInstanceOf(NestSetupError);
    expect(error.code).toBe('STORAGE_MISSING');
    expect(error.message).toContain('TidingsModule.forRoot needs a storage adapter');
  });

  it('TOPIC_CONFLICT: a topic that storage records with another semantic, declared first by another application', async () => {
    const topic = uniqueTopic();
    const storage = memoryStorage();
    const first = await Test.createTestingModule({
      imports: [TidingsModule.forRoot({ storage }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
    })
      .setLogger(new RecordingLogger())
      .compile();
    await first.init();
    const error = await startupError({ imports: [TidingsModule.forRoot({ storage }), TidingsModule.forFeature([{ name: topic, semantic: 'exactly-once' }])] });
    expect(error).toBeInstanceOf(TopicConflictError);
    expect(error.message).toContain(`Topic "${topic}" is recorded in memory storage as at-least-once`);
    await first.close();
  });

  it('TOPIC_NOT_DECLARED: a @Consumer of a topic no forFeature declared, naming the class and its module', async () => {
    const declared = uniqueTopic();
    const missing = uniqueTopic();

    @Consumer(missing)
    class ShipmentsConsumer {
      handle() {}
    }

    @Module({ imports: [TidingsModule.forFeature([{ name: declared, semantic: 'at-least-once' }])], providers: [ShipmentsConsumer] })
    class ShipmentsModule {}

    const error = await startupError({ imports: [root(), ShipmentsModule] });
    expect(error.code).toBe('TOPIC_NOT_DECLARED');
    expect(error.message).toContain(`@Consumer('${missing}') on ShipmentsConsumer: topic "${missing}" is not declared`);
    expect(error.message).toContain(`to the imports of ShipmentsModule (declared topics: ${declared})`);
  });

  it('TOPIC_NOT_DECLARED: an @OnMessage method, named Class.method', async () => {
    const missing = uniqueTopic();

    @Injectable()
    class Mailer {
      @OnMessage(missing)
      send(_message: Message) {}
    }

    const error = await startupError({ imports: [root()], providers: [Mailer] });
    expect(error.code).toBe('TOPIC_NOT_DECLARED');
    expect(error.message).toContain(`@OnMessage('${missing}') on Mailer.send`);
  });

  it('TOPIC_CONFLICT: one topic declared with two semantics, naming both modules', async () => {
    const topic = uniqueTopic();

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'exactly-once' }])] })
    class OrdersModule {}

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])] })
    class BillingModule {}

    const error = await startupError({ imports: [root(), OrdersModule, BillingModule] });
    expect(error).toBeInstanceOf(TopicConflictError);
    expect(error.code).toBe('TOPIC_CONFLICT');
    expect(error.message).toContain(`Topic "${topic}" is already declared as exactly-once/end-to-end`);
    expect(error.message).toContain(
      `TidingsModule.forFeature declares "${topic}" as exactly-once (end-to-end) in OrdersModule, and as at-least-once in BillingModule.`,
    );
  });

  it('SUBSCRIPTION_NOT_DECLARED: a @Consumer of a subscription its topic does not list, naming the declared ones', async () => {
    const topic = uniqueTopic();

    @Consumer(topic, { subscription: 'biling' })
    class BillingConsumer {
      handle() {}
    }

    const error = await startupError({
      imports: [root(), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['billing', 'shipping'] }])],
      providers: [BillingConsumer],
    });
    expect(error).toBeInstanceOf(NestSetupError);
    expect(error.code).toBe('SUBSCRIPTION_NOT_DECLARED');
    expect(error.message).toContain(
      `@Consumer('${topic}', { subscription: 'biling' }) on BillingConsumer: topic "${topic}" has no subscription "biling" (declared: billing, shipping).`,
    );
    expect(error.message).toContain(`Add 'biling' to the topic's subscriptions in TidingsModule.forFeature([{ name: '${topic}', subscriptions: [...] }])`);
  });

  it('SUBSCRIPTION_NOT_DECLARED: a @Consumer naming no subscription, of a topic declared with named ones and no default', async () => {
    const topic = uniqueTopic();

    @Consumer(topic)
    class Unnamed {
      handle() {}
    }

    const error = await startupError({
      imports: [root(), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: { billing: { maxDeliveries: 3 } } }])],
      providers: [Unnamed],
    });
    expect(error.code).toBe('SUBSCRIPTION_NOT_DECLARED');
    expect(error.message).toBe(
      `@Consumer('${topic}') on Unnamed reads the default subscription, and topic "${topic}" is declared with subscriptions billing and no default one. ` +
        `Name the one to read (e.g. { subscription: 'billing' }), or add 'default' to the topic's subscriptions in TidingsModule.forFeature([{ name: '${topic}', subscriptions: [...] }]).`,
    );
  });

  it('SUBSCRIPTION_NOT_DECLARED: an @OnMessage method of a named subscription, on a topic declared without subscriptions', async () => {
    const topic = uniqueTopic();

    @Injectable()
    class Audit {
      @OnMessage(topic, { subscription: 'audit' })
      record(_message: Message) {}
    }

    const error = await startupError({ imports: [root(), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])], providers: [Audit] });
    expect(error.code).toBe('SUBSCRIPTION_NOT_DECLARED');
    expect(error.message).toContain(
      `@OnMessage('${topic}', { subscription: 'audit' }) on Audit.record: topic "${topic}" has no subscription "audit" (declared: default).`,
    );
  });

  it('TOPIC_CONFLICT: one topic declared with two orderings, naming both modules', async () => {
    const topic = uniqueTopic();

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', ordering: 'key', subscriptions: ['billing'] }])] })
    class BillingModule {}

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['shipping'] }])] })
    class ShippingModule {}

    const error = await startupError({ imports: [root(), BillingModule, ShippingModule] });
    expect(error).toBeInstanceOf(TopicConflictError);
    expect(error.message).toContain(`Topic "${topic}" is already declared with ordering 'key'; it cannot also be ordered by 'none'.`);
    expect(error.message).toContain(
      `TidingsModule.forFeature declares "${topic}" as at-least-once ordered by key in BillingModule, and as at-least-once in ShippingModule.`,
    );
  });

  it('TOPIC_CONFLICT: one subscription declared with two sets of options, naming both modules', async () => {
    const topic = uniqueTopic();

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: { billing: { maxDeliveries: 3 } } }])] })
    class BillingModule {}

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['billing'] }])] })
    class ReportsModule {}

    const error = await startupError({ imports: [root(), BillingModule, ReportsModule] });
    expect(error.code).toBe('TOPIC_CONFLICT');
    expect(error.message).toContain(`Subscription "billing" of topic "${topic}" is declared with options {"maxDeliveries":3} and {}.`);
    expect(error.message).toContain(
      `TidingsModule.forFeature declares subscription "billing" of "${topic}" with {"maxDeliveries":3} in BillingModule, and with {} in ReportsModule.`,
    );
  });

  it('TOPIC_CONFLICT: a topic that storage records with another ordering, declared first by another application', async () => {
    const topic = uniqueTopic();
    const storage = memoryStorage();
    const first = await Test.createTestingModule({
      imports: [TidingsModule.forRoot({ storage }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', ordering: 'key' }])],
    })
      .setLogger(new RecordingLogger())
      .compile();
    await first.init();
    const error = await startupError({ imports: [TidingsModule.forRoot({ storage }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])] });
    expect(error).toBeInstanceOf(TopicConflictError);
    expect(error.message).toContain(`Topic "${topic}" is recorded in memory storage as ordered by key; this process declares ordering 'none'.`);
    await first.close();
  });

  it('NOT_A_PROVIDER: a @Consumer registered as a controller', async () => {
    const topic = uniqueTopic();

    @Consumer(topic)
    @Controller()
    class PaymentsConsumer {
      handle() {}
    }

    @Module({ imports: [TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])], controllers: [PaymentsConsumer] })
    class PaymentsModule {}

    const error = await startupError({ imports: [root(), PaymentsModule] });
    expect(error.code).toBe('NOT_A_PROVIDER');
    expect(error.message).toContain("PaymentsConsumer uses Tidings decorators but is registered in PaymentsModule's controllers");
  });

  it('HANDLE_MISSING: a @Consumer class without handle()', async () => {
    const topic = uniqueTopic();

    @Consumer(topic)
    class Forgetful {
      process() {}
    }

    const error = await startupError({ imports: [root(), TidingsModule.forFeature([{ name: topic, semantic: 'at-most-once' }])], providers: [Forgetful] });
    expect(error.code).toBe('HANDLE_MISSING');
    expect(error.message).toContain(`Forgetful is a @Consumer('${topic}') but has no handle(message, ctx) method`);
  });

  it('SCOPED_PROVIDER: an @OnTidingsEvent method on a request-scoped provider', async () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {
      @OnTidingsEvent('error')
      onError() {}
    }

    const error = await startupError({ imports: [root()], providers: [PerRequest] });
    expect(error.code).toBe('SCOPED_PROVIDER');
    expect(error.message).toContain('PerRequest uses Tidings decorators but is request-scoped or transient');
  });

  it('INVALID_OPTIONS: bad consumer options, naming the class; consumers already started are stopped', async () => {
    const good = uniqueTopic();
    const bad = uniqueTopic();

    @Consumer(good)
    class Fine {
      handle() {}
    }

    @Consumer(bad, { concurrency: 0 })
    class Greedy {
      handle() {}
    }

    const { error, app } = await failedStart({
      imports: [
        root(),
        TidingsModule.forFeature([
          { name: good, semantic: 'at-least-once' },
          { name: bad, semantic: 'at-least-once' },
        ]),
      ],
      providers: [Fine, Greedy],
    });
    expect(error).toBeInstanceOf(InvalidOptionsError);
    expect(error.message).toBe(`Greedy (topic "${bad}"): Consumer option concurrency must be an integer >= 1, got 0.`);
    // Nest runs no shutdown hook after a failed start: the module closed the instance (and its consumers) itself.
    expect(() => app!.get(Tidings).topic(good, { semantic: 'at-least-once' })).toThrow(ClosedError);
  });

  it('INVALID_OPTIONS: a forFeature ordering or subscription options core refuses, which TypeScript refuses too', async () => {
    const topic = uniqueTopic();
    const unordered = await startupError({
      imports: [
        root(),
        TidingsModule.forFeature([
          {
            name: topic,
            semantic: 'at-least-once',
            // @ts-expect-error: 'fifo' is no ordering
            ordering: 'fifo',
          },
        ]),
      ],
    });
    expect(unordered).toBeInstanceOf(InvalidOptionsError);
    expect(unordered.message).toContain(`Unknown ordering "fifo" for topic "${topic}": use 'none', 'key', 'key-strict'.`);

    const other = uniqueTopic();
    const loop = await startupError({
      imports: [root(), TidingsModule.forFeature([{ name: other, semantic: 'at-least-once', subscriptions: { billing: { deadLetter: other } } }])],
    });
    expect(loop.message).toContain(`Subscription "billing" of topic "${other}" cannot dead-letter into its own topic`);
  });

  it('INVALID_OPTIONS: bad consumer options of a named subscription, naming the class and the subscription', async () => {
    const topic = uniqueTopic();

    @Consumer(topic, { subscription: 'billing', batchSize: 0 })
    class Greedy {
      handle() {}
    }

    const error = await startupError({
      imports: [root(), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['billing'] }])],
      providers: [Greedy],
    });
    expect(error.message).toBe(`Greedy (topic "${topic}", subscription "billing"): Consumer option batchSize must be an integer >= 1, got 0.`);
  });

  it('INVALID_TOPIC and INVALID_OPTIONS: a decorator given a topic or subscription name none can have, when the class is defined', () => {
    expect(() => Consumer('orders/eu')).toThrow(InvalidTopicError);
    expect(() => OnMessage('')).toThrow(InvalidTopicError);
    expect(() => Consumer('orders', { subscription: 'billing team' })).toThrow(InvalidOptionsError);
    expect(() => OnMessage('orders', { subscription: '' })).toThrow(/Subscription name an empty string of topic "orders" is invalid/);
  });
});

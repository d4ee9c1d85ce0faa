import { Controller, Module, type INestApplication, type INestMicroservice } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Ctx, EventPattern, MessagePattern, Payload, type MicroserviceOptions } from '@nestjs/microservices';
import { Test } from '@nestjs/testing';
import { lastValueFrom, throwError } from 'rxjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tidings, type TransitionEvent } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { NestSetupError, TidingsModule } from '@tidings/nest';
import {
  RequestResponseNotSupportedError,
  TIDINGS_TRANSPORT,
  TidingsClient,
  TidingsContext,
  TidingsRecord,
  TidingsRecordBuilder,
  TidingsServer,
  type TidingsServerOptions,
} from '@tidings/nest/microservices';
import { RecordingLogger, sleep, uniqueTopic, waitFor } from './support.js';

interface Order {
  id: number;
}

const closing: Array<INestApplication | INestMicroservice> = [];
afterEach(async () => {
  await Promise.all(closing.splice(0).map((app) => app.close()));
});

const dir = mkdtempSync(join(tmpdir(), 'tidings-nest-ms-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A hybrid application (HTTP plus the Tidings transport), the way `main.ts` connects one; `server` adds to the transport's options. */
async function hybrid(metadata: { imports: any[]; controllers?: any[] }, server: Omit<TidingsServerOptions, 'tidings'> = {}) {
  const logger = new RecordingLogger();
  const moduleRef = await Test.createTestingModule(metadata).setLogger(logger).compile();
  const app = moduleRef.createNestApplication({ logger });
  closing.push(app);
  const tidings = app.get(Tidings);
  app.connectMicroservice<MicroserviceOptions>({ strategy: new TidingsServer({ ...server, tidings }) });
  await app.startAllMicroservices();
  await app.init();
  return { app, tidings, client: new TidingsClient({ tidings }) };
}

describe('TidingsServer and TidingsClient', () => {
  it('delivers client.emit(topic, payload) to an @EventPattern handler with the payload and a TidingsContext', async () => {
    const topic = uniqueTopic('ms');
    const received: Array<{ data: Order; id: string; attempt: number; topic: string; em: unknown }> = [];

    @Controller()
    class OrdersEvents {
      @EventPattern(topic)
      async placed(@Payload() data: Order, @Ctx() ctx: TidingsContext<Order>) {
        const message = ctx.getMessage();
        received.push({ data, id: message.id, attempt: message.attempt, topic: ctx.getTopic(), em: ctx.getConsumeContext().em });
      }
    }

    const { client } = await hybrid({
      imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'exactly-once' }])],
      controllers: [OrdersEvents],
    });
    const ack = await lastValueFrom(client.emit(topic, { id: 1 }));
    expect(ack).toMatchObject({ duplicate: false });
    await waitFor(() => received.length === 1);
    expect(received[0]).toMatchObject({ data: { id: 1 }, id: ack.id, attempt: 1, topic });
    // On memory storage the transaction handle is the memory adapter's own.
    expect(received[0]!.em).toBeDefined();
  });

  it('acks when the handler returns and nacks when it throws or its observable errors: the message comes back', async () => {
    const thrown = uniqueTopic('ms');
    const errored = uniqueTopic('ms');
    const attempts: Array<[string, number]> = [];

    @Controller()
    class Flaky {
      @EventPattern(thrown)
      async throws(@Payload() _data: Order, @Ctx() ctx: TidingsContext) {
        attempts.push([thrown, ctx.getMessage().attempt]);
        if (ctx.getMessage().attempt === 1) throw new Error('first try fails');
      }

      @EventPattern(errored)
      errors(@Payload() _data: Order, @Ctx() ctx: TidingsContext) {
        attempts.push([errored, ctx.getMessage().attempt]);
        return ctx.getMessage().attempt === 1 ? throwError(() => new Error('first try errors')) : [];
      }
    }

    const options = { semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } } as const;
    const { tidings, client } = await hybrid({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage() }),
        TidingsModule.forFeature([
          { name: thrown, ...options },
          { name: errored, ...options },
        ]),
      ],
      controllers: [Flaky],
    });
    await lastValueFrom(client.emit(thrown, { id: 1 }));
    await lastValueFrom(client.emit(errored, { id: 2 }));
    await waitFor(async () => attempts.length === 4 && Object.values(await tidings.counts()).every((states) => Object.keys(states).length === 0));
    expect(attempts.sort()).toEqual(
      [
        [thrown, 1],
        [thrown, 2],
        [errored, 1],
        [errored, 2],
      ].sort(),
    );
  });

  it('serves a topic whose name parses as JSON', async () => {
    const topic = `1e${process.pid}`;
    const got: unknown[] = [];

    @Controller()
    class Numbers {
      @EventPattern(topic)
      handle(@Payload() data: unknown) {
        got.push(data);
      }
    }

    const { client } = await hybrid({
      imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'at-most-once' }])],
      controllers: [Numbers],
    });
    await lastValueFrom(client.emit(topic, { n: 1 }));
    await waitFor(() => got.length === 1);
    expect(got).toEqual([{ n: 1 }]);
  });

  it('runs every @EventPattern handler of a topic, and acks only when all of them succeed', async () => {
    const topic = uniqueTopic('ms');
    const calls: string[] = [];

    @Controller()
    class Audit {
      @EventPattern(topic)
      record(@Ctx() ctx: TidingsContext) {
        calls.push(`audit ${ctx.getMessage().attempt}`);
      }
    }

    @Controller()
    class Ship {
      @EventPattern(topic)
      ship(@Ctx() ctx: TidingsContext) {
        calls.push(`ship ${ctx.getMessage().attempt}`);
        if (ctx.getMessage().attempt === 1) throw new Error('carrier down');
      }
    }

    const { tidings, client } = await hybrid({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage() }),
        TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', backoff: { initialMs: 1, maxMs: 1 } }]),
      ],
      controllers: [Audit, Ship],
    });
    await lastValueFrom(client.emit(topic, { id: 1 }));
    await waitFor(async () => calls.length === 4 && Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0);
    expect(calls.sort()).toEqual(['audit 1', 'audit 2', 'ship 1', 'ship 2']);
  });

  it('takes consumer options from @EventPattern extras, topics from its own option, and the instance from a function', async () => {
    const topic = uniqueTopic('ms');
    let running = 0;
    let most = 0;

    @Controller()
    class Parallel {
      @EventPattern(topic, TIDINGS_TRANSPORT, { concurrency: 3, batchSize: 3 })
      async handle() {
        most = Math.max(most, ++running);
        await sleep(50);
        running--;
      }
    }

    const moduleRef = await Test.createTestingModule({ imports: [TidingsModule.forRoot({ storage: memoryStorage() })], controllers: [Parallel] })
      .setLogger(new RecordingLogger())
      .compile();
    const tidings = moduleRef.get(Tidings);
    const topics = { [topic]: { semantic: 'at-least-once' as const } };
    const client = new TidingsClient({ tidings, topics });
    await lastValueFrom(client.emit(topic, { id: 1 }));
    await lastValueFrom(client.emit(topic, { id: 2 }));
    await lastValueFrom(client.emit(topic, { id: 3 }));

    // The function form: the instance is looked up when the microservice listens, once it exists.
    const microservice: INestMicroservice = moduleRef.createNestMicroservice<MicroserviceOptions>({
      strategy: new TidingsServer({ tidings: () => microservice.get(Tidings), topics }),
    });
    closing.push(microservice);
    await microservice.listen();
    await waitFor(async () => Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0);
    expect(most).toBe(3);
  });

  it('runs as a standalone microservice from NestFactory with the async options form, and drains a handler in flight on close', async () => {
    const topic = uniqueTopic('ms');
    const done: number[] = [];

    @Controller()
    class Slow {
      @EventPattern(topic)
      async handle(@Payload() order: Order) {
        await sleep(200);
        done.push(order.id);
      }
    }

    @Module({
      imports: [TidingsModule.forRoot({ storage: memoryStorage() }), TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once' }])],
      controllers: [Slow],
    })
    class AppModule {}

    const logger = new RecordingLogger();
    const microservice = await NestFactory.createMicroservice(AppModule, {
      logger,
      abortOnError: false,
      inject: [Tidings],
      useFactory: (tidings: Tidings) => ({ strategy: new TidingsServer({ tidings }) }),
    });
    await microservice.listen();
    const tidings = microservice.get(Tidings);
    const transitions: TransitionEvent[] = [];
    tidings.events.on('transition', (e) => transitions.push(e));
    await lastValueFrom(new TidingsClient({ tidings }).emit(topic, { id: 1 }));
    await waitFor(() => transitions.some((t) => t.to === 'leased'));

    await microservice.close();
    expect(done).toEqual([1]);
    expect(transitions.map((t) => t.to)).toEqual(['stored', 'acked', 'leased', 'consumed', 'deleted']);
    expect(logger.errors).toEqual([]);
  });

  it(
    'emits with an ordering key and an id through TidingsRecord: one key arrives in the order emitted, and an id emitted twice is one message',
    { timeout: 30_000 },
    async () => {
      const topic = uniqueTopic('ms');
      const handled: string[] = [];
      const running = new Set<string>();
      const overlaps: string[] = [];
      let widest = 0;

      @Controller()
      class Ledger {
        @EventPattern(topic, { concurrency: 4, batchSize: 8, pollMs: 10 })
        async post(@Payload() entry: { account: string; seq: number }, @Ctx() ctx: TidingsContext) {
          const { key, attempt } = ctx.getMessage();
          if (running.has(entry.account)) overlaps.push(`${entry.account}#${entry.seq}`);
          running.add(entry.account);
          widest = Math.max(widest, running.size);
          try {
            // A first delivery fails now and then: its retry still comes before the key's next message.
            if (entry.seq === 1 && attempt === 1) throw new Error('ledger busy');
            await sleep(5);
            handled.push(`${key}:${entry.seq}`);
          } finally {
            running.delete(entry.account);
          }
        }
      }

      const { tidings, client } = await hybrid({
        imports: [
          TidingsModule.forRoot({ storage: sqliteStorage({ file: join(dir, 'keys.db') }), purgeIntervalMs: 0 }),
          TidingsModule.forFeature([{ name: topic, semantic: 'exactly-once', scope: 'end-to-end', ordering: 'key', backoff: { initialMs: 1, maxMs: 5 } }]),
        ],
        controllers: [Ledger],
      });
      const stored: string[] = [];
      tidings.events.on('transition', (t) => t.topic === topic && t.event === 'STORE' && stored.push(t.id));
      const accounts = ['a', 'b', 'c'];
      for (let seq = 0; seq < 4; seq++) {
        for (const account of accounts) {
          const record =
            account === 'c'
              ? new TidingsRecordBuilder({ account, seq }).setOptions({ id: `${account}-${seq}`, key: account }).build()
              : new TidingsRecord({ account, seq }, { id: `${account}-${seq}`, key: account });
          expect(await lastValueFrom(client.emit(topic, record))).toEqual({ id: `${account}-${seq}`, duplicate: false });
        }
      }
      // The same id again (a producer retrying after a lost ack) is acked as a duplicate and not delivered.
      expect(await lastValueFrom(client.emit(topic, new TidingsRecord({ account: 'a', seq: 0 }, { id: 'a-0', key: 'a' })))).toEqual({
        id: 'a-0',
        duplicate: true,
      });
      await waitFor(async () => new Set(handled).size === accounts.length * 4 && Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0, 20_000);

      expect(stored.sort()).toEqual(accounts.flatMap((account) => [0, 1, 2, 3].map((seq) => `${account}-${seq}`)).sort());
      expect(overlaps).toEqual([]);
      for (const account of accounts) {
        // A failure rolls back its batch's transaction, so a message may be handled again before its key moves on; never after.
        const runs = handled.filter((h) => h.startsWith(`${account}:`)).filter((h, i, all) => h !== all[i - 1]);
        expect(runs, account).toEqual([0, 1, 2, 3].map((seq) => `${account}:${seq}`));
      }
      expect(widest).toBeGreaterThan(1);
    },
  );

  it('reads the subscription the server names, or the one in @EventPattern extras: each gets every message, and settles on its own', async () => {
    const topic = uniqueTopic('ms');
    const calls: string[] = [];

    @Controller()
    class Audit {
      @EventPattern(topic)
      record(@Ctx() ctx: TidingsContext) {
        calls.push(`audit ${ctx.getMessage().subscription} ${ctx.getMessage().attempt}`);
      }

      @EventPattern(topic, { subscription: 'audit' })
      count(@Ctx() ctx: TidingsContext) {
        calls.push(`count ${ctx.getMessage().subscription} ${ctx.getMessage().attempt}`);
      }
    }

    @Controller()
    class Billing {
      @EventPattern(topic, { subscription: 'billing' })
      bill(@Ctx() ctx: TidingsContext) {
        calls.push(`bill ${ctx.getMessage().subscription} ${ctx.getMessage().attempt}`);
        if (ctx.getMessage().attempt === 1) throw new Error('card processor down');
      }
    }

    const { tidings, client } = await hybrid(
      {
        imports: [
          TidingsModule.forRoot({ storage: memoryStorage() }),
          TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['audit', 'billing'], backoff: { initialMs: 1, maxMs: 1 } }]),
        ],
        controllers: [Audit, Billing],
      },
      { subscription: 'audit' },
    );
    await lastValueFrom(client.emit(topic, { id: 1 }));
    await waitFor(async () => calls.length === 4 && Object.keys((await tidings.counts(topic))[topic] ?? {}).length === 0);
    // The billing failure redelivers billing's copy alone: audit's handlers ran once.
    expect(calls.sort()).toEqual(['audit audit 1', 'bill billing 1', 'bill billing 2', 'count audit 1']);
  });

  it('fails to listen on an @EventPattern of a subscription its topic does not declare, naming the declared ones', async () => {
    const topic = uniqueTopic('ms');

    @Controller()
    class Events {
      @EventPattern(topic, { subscription: 'shiping' })
      handle() {}
    }

    const moduleRef = await Test.createTestingModule({
      imports: [
        TidingsModule.forRoot({ storage: memoryStorage() }),
        TidingsModule.forFeature([{ name: topic, semantic: 'at-least-once', subscriptions: ['shipping'] }]),
      ],
      controllers: [Events],
    })
      .setLogger(new RecordingLogger())
      .compile();
    const microservice = moduleRef.createNestMicroservice<MicroserviceOptions>({ strategy: new TidingsServer({ tidings: moduleRef.get(Tidings) }) });
    closing.push(microservice);
    const error = await microservice.listen().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'SUBSCRIPTION_NOT_DECLARED' });
    expect((error as Error).message).toContain(
      `@EventPattern("${topic}") on subscription "shiping": topic "${topic}" has no subscription "shiping" (declared: shipping).`,
    );
  });

  it('refuses client.send (request/response) with a typed error that says to emit', async () => {
    const tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0 });
    try {
      const client = new TidingsClient({ tidings });
      expect(() => client.send('orders', { id: 1 })).toThrow(RequestResponseNotSupportedError);
      expect(() => client.send('orders', { id: 1 })).toThrow(/Use client\.emit\(pattern, payload\)/);
      await expect(lastValueFrom(client.emit('nowhere', { id: 1 }))).rejects.toMatchObject({ code: 'TOPIC_NOT_DECLARED' });
      expect(client.unwrap()).toBe(tidings);
    } finally {
      await tidings.close();
    }
  });

  it('fails to listen on an @EventPattern whose topic nobody declared, and warns that @MessagePattern is not served', async () => {
    const missing = uniqueTopic('ms');

    @Controller()
    class Events {
      @EventPattern(missing)
      handle() {}

      @MessagePattern('sum')
      sum(@Payload() data: number[]) {
        return data.reduce((a, b) => a + b, 0);
      }
    }

    const logger = new RecordingLogger();
    const moduleRef = await Test.createTestingModule({ imports: [TidingsModule.forRoot({ storage: memoryStorage() })], controllers: [Events] })
      .setLogger(logger)
      .compile();
    const microservice = moduleRef.createNestMicroservice<MicroserviceOptions>({ strategy: new TidingsServer({ tidings: moduleRef.get(Tidings) }) });
    closing.push(microservice);
    const error = await microservice.listen().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(NestSetupError);
    expect(error).toMatchObject({ code: 'TOPIC_NOT_DECLARED' });
    expect((error as Error).message).toContain(`@EventPattern("${missing}"): topic "${missing}" is not declared`);
    expect(logger.warnings.map((w) => String(w[0]))).toContain(
      '@MessagePattern(sum) is not served by TidingsServer: Tidings carries events without replies; use @EventPattern.',
    );
  });
});

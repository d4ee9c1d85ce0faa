// The transaction type flows from the storage to topics and handlers without annotations. The type assertions
// here are checked by `npm run typecheck` (tsc over test/); the run itself proves the same calls work.
import type { EntityManager } from '@mikro-orm/knex';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { memoryStorage, type MemoryTransaction } from '@tidings/adapter-memory';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { Tidings, silentLogger, type ConsumeContext, type TidingsOptions } from '@tidings/core';

describe('types of Tidings.create', () => {
  it('accepts options typed as plain TidingsOptions', async () => {
    const options: TidingsOptions = { storage: memoryStorage(), purgeIntervalMs: 0, logger: silentLogger };
    const tidings = await Tidings.create(options);
    expectTypeOf(tidings).toEqualTypeOf<Tidings<unknown>>();
    expect(tidings.topic('typing.plain', { semantic: 'at-least-once' }).name).toBe('typing.plain');
    await tidings.close();
  });

  it("gives exactly-once handlers the storage's transaction as ctx.em, with no annotation", async () => {
    const tidings = await Tidings.create({ storage: sqliteStorage({ file: ':memory:' }), purgeIntervalMs: 0, logger: silentLogger });
    const topic = tidings.topic<{ n: number }>('typing.eo', { semantic: 'exactly-once' });
    let seen: unknown;
    const consumer = topic.consume(async (m, ctx) => {
      expectTypeOf(ctx).toEqualTypeOf<ConsumeContext<EntityManager>>();
      expectTypeOf(m.payload.n).toBeNumber();
      seen = ctx.em.getTransactionContext() !== undefined;
    });
    await topic.send({ n: 1 }, { id: 'one' });
    for (let i = 0; i < 500 && seen === undefined; i++) await new Promise((r) => setTimeout(r, 10));
    await consumer.stop();
    expect(seen).toBe(true);
    await tidings.close();
  });

  it('types the memory storage transaction the same way', async () => {
    const tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0 });
    expectTypeOf(tidings).toEqualTypeOf<Tidings<MemoryTransaction>>();
    await tidings.close();
  });
});

import { EntitySchema, MikroORM as SqliteORM } from '@mikro-orm/sqlite';
import { MikroORM as PostgresORM } from '@mikro-orm/postgresql';
import type { EntityManager } from '@mikro-orm/knex';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type Semantic } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { sqliteStorage, tidingsEntities } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { freshPostgresDatabase } from './support/databases.js';

/** An application's table, written by batch handlers in the batch's transaction. */
interface Effect {
  id: string;
}
const EffectEntity = new EntitySchema<Effect>({ name: 'BatchEffect', properties: { id: { type: 'string', primary: true } } });

const dir = mkdtempSync(join(tmpdir(), 'tidings-batch-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type Opened = { storage: StorageAdapter<any>; effects?: () => Promise<string[]>; close(): Promise<void> };

/** Storages with, for SQL, the application's own MikroORM holding its table and Tidings' in one database. */
const backends: Array<[string, () => Promise<Opened>]> = [
  ['memory', async () => ({ storage: memoryStorage(), close: async () => {} })],
  [
    'SQLite file',
    async () => {
      const orm = await SqliteORM.init({
        dbName: join(dir, `b-${Math.random().toString(36).slice(2)}.db`),
        entities: [EffectEntity, ...tidingsEntities],
        allowGlobalContext: true,
      });
      await orm.schema.updateSchema();
      return {
        storage: sqliteStorage({ orm }),
        effects: async () => (await orm.em.fork().find(EffectEntity, {})).map((e) => e.id).sort(),
        close: () => orm.close(true),
      };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const orm = await PostgresORM.init({
        clientUrl: await freshPostgresDatabase('batch'),
        entities: [EffectEntity, ...tidingsEntities],
        allowGlobalContext: true,
      });
      await orm.schema.updateSchema();
      return {
        storage: postgresStorage({ orm }),
        effects: async () => (await orm.em.fork().find(EffectEntity, {})).map((e) => e.id).sort(),
        close: () => orm.close(true),
      };
    },
  ],
];

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const SEMANTICS: Semantic[] = ['at-most-once', 'at-least-once', 'exactly-once'];
const fast = { backoff: { initialMs: 1, maxMs: 2 } };
let n = 0;

describe.each(backends)('batch handlers on %s', (_name, open) => {
  it.each(SEMANTICS)('%s: hands the leased batch to one call, up to batchSize, every message once', async (semantic) => {
    const o = await open();
    const tidings = await Tidings.create({ storage: o.storage, purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<number>(`b.${semantic}.${++n}`, { semantic });
      await topic.sendMany(
        Array.from({ length: 45 }, (_, i) => i),
        semantic === 'exactly-once' ? { id: (p) => `m${p}` } : {},
      );
      const sizes: number[] = [];
      const seen: number[] = [];
      topic.consumeBatch(
        (messages) => {
          sizes.push(messages.length);
          seen.push(...messages.map((m) => m.payload));
        },
        { batchSize: 20, pollMs: 10 },
      );
      await until('45 messages', () => seen.length >= 45);
      await new Promise((r) => setTimeout(r, 100));
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 45 }, (_, i) => i));
      expect(Math.max(...sizes)).toBeLessThanOrEqual(20);
      expect(sizes.length).toBeGreaterThanOrEqual(3);
    } finally {
      await tidings.close();
      await o.close();
    }
  });

  it.each(['at-least-once', 'exactly-once'] as const)('%s: nacks only the messages the handler marks failed, and each comes back', async (semantic) => {
    const o = await open();
    const tidings = await Tidings.create({ storage: o.storage, purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<number>(`f.${semantic}.${++n}`, { semantic, ...fast });
      await topic.sendMany(
        Array.from({ length: 10 }, (_, i) => i),
        { id: (p) => `m${p}` },
      );
      const attempts = new Map<number, number[]>();
      topic.consumeBatch(
        async (messages, ctx) => {
          for (const m of messages) {
            attempts.set(m.payload, [...(attempts.get(m.payload) ?? []), m.attempt]);
            // Odd messages fail on their first delivery and write nothing; the others write their effect.
            if (m.payload % 2 === 1 && m.attempt === 1) ctx.fail(m, new Error('not yet'));
            else if (o.effects && ctx.em) (ctx.em as EntityManager).persist((ctx.em as EntityManager).create(EffectEntity, { id: m.id }));
          }
        },
        { batchSize: 10, pollMs: 10 },
      );
      await until(
        'every message to succeed',
        () => attempts.size === 10 && [...attempts.values()].every((a) => a.length === (a[0] === 1 && a.length === 1 ? 1 : 2)),
      );
      await until('nothing left', async () => Object.keys((await tidings.counts(topic.name))[topic.name] ?? {}).length === 0);
      for (const [p, a] of attempts) expect(a, `message ${p}`).toEqual(p % 2 === 1 ? [1, 2] : [1]);
      if (o.effects && semantic === 'exactly-once') expect(await o.effects()).toEqual(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    } finally {
      await tidings.close();
      await o.close();
    }
  });

  it('exactly-once: one transaction per batch; a throw rolls back every write of it and the batch comes back', async () => {
    const o = await open();
    let transactions = 0;
    const counting = new Proxy(o.storage, {
      get: (target, prop) =>
        prop === 'transaction'
          ? (fn: (tx: unknown) => Promise<unknown>) => {
              transactions++;
              return target.transaction(fn);
            }
          : ((Reflect.get(target, prop, target) as { bind?: (t: unknown) => unknown })?.bind?.(target) ?? Reflect.get(target, prop, target)),
    }) as StorageAdapter<any>;
    const tidings = await Tidings.create({ storage: counting, purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<number>(`t.${++n}`, { semantic: 'exactly-once', ...fast });
      await topic.sendMany(
        Array.from({ length: 30 }, (_, i) => i),
        { id: (p) => `m${p}` },
      );
      const before = transactions;
      let calls = 0;
      topic.consumeBatch(
        async (messages, ctx) => {
          calls++;
          if (o.effects) for (const m of messages) (ctx.em as EntityManager).persist((ctx.em as EntityManager).create(EffectEntity, { id: m.id }));
          if (calls === 1) throw new Error('the whole first batch fails');
        },
        { batchSize: 30, pollMs: 10 },
      );
      await until('the batch consumed', async () => Object.keys((await tidings.counts(topic.name))[topic.name] ?? {}).length === 0);
      expect(calls).toBe(2);
      expect(transactions - before).toBe(2);
      if (o.effects) expect(await o.effects()).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`).sort());
    } finally {
      await tidings.close();
      await o.close();
    }
  });

  it('never holds two messages of one key in a batch, and keeps each key in order across batches', async () => {
    const o = await open();
    const tidings = await Tidings.create({ storage: o.storage, purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<{ k: string; i: number }>(`o.${++n}`, { semantic: 'exactly-once', ordering: 'key' });
      await topic.sendMany(
        Array.from({ length: 40 }, (_, i) => ({ k: `k${i % 4}`, i })),
        { id: (p) => `m${p.i}`, key: (p) => p.k },
      );
      const order = new Map<string, number[]>();
      let twice = 0;
      topic.consumeBatch(
        (messages) => {
          if (new Set(messages.map((m) => m.key)).size < messages.length) twice++;
          for (const m of messages) order.set(m.key!, [...(order.get(m.key!) ?? []), m.payload.i]);
        },
        { batchSize: 10, pollMs: 10 },
      );
      await until('40 messages', () => [...order.values()].reduce((a, v) => a + v.length, 0) === 40);
      expect(twice).toBe(0);
      for (let k = 0; k < 4; k++) expect(order.get(`k${k}`)).toEqual(Array.from({ length: 10 }, (_, j) => j * 4 + k));
    } finally {
      await tidings.close();
      await o.close();
    }
  });
});

describe('batch handler misuse', () => {
  it('refuses concurrency, a non-function, and ctx.fail of a message not in the batch, each with a clear error', async () => {
    const tidings = await Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, logger: silentLogger });
    try {
      const topic = tidings.topic<number>('misuse', { semantic: 'at-least-once', ...fast });
      expect(() => topic.consumeBatch(() => undefined, { concurrency: 4 } as never)).toThrow(/takes no concurrency.*Start more consumers/);
      expect(() => topic.consumeBatch(42 as never)).toThrow(/needs a handler function/);
      const errors: string[] = [];
      tidings.events.on('handlerError', (e) => errors.push(String((e.error as Error).message)));
      await topic.send(1);
      topic.consumeBatch((_messages, ctx) => ctx.fail('nope'), { pollMs: 10 });
      await until('the handler error', () => errors.length > 0);
      expect(errors[0]).toMatch(/ctx.fail\(\) was given "nope", which is not a message of this batch/);
    } finally {
      await tidings.close();
    }
  });
});

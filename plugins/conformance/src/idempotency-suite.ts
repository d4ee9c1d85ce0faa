import type { IdempotencyStore } from '@tidings/core/adapter';
import { afterEach, describe, expect, it } from 'vitest';
import { T0, sorted, uniqueName, type IdempotencyFactory } from './harness.js';

/**
 * Registers the idempotency store conformance suite: numbered sections on recording, expiry and
 * purge, concurrent records and edge cases. `factory()` is called once per test; topics are unique
 * per test, so stores over one shared database are fine.
 */
export function describeIdempotencyStore(name: string, factory: IdempotencyFactory): void {
  describe(`idempotency store conformance: ${name}`, () => {
    let stores: IdempotencyStore<any>[] = [];
    const open = async () => {
      const store = await factory();
      stores.push(store);
      return store;
    };
    const topic = () => uniqueName('t').replaceAll('_', '.');
    afterEach(async () => {
      await Promise.all(stores.map((s) => s.close?.()));
      stores = [];
    });

    describe('1. recording', () => {
      it('records new ids and then reports them as seen', async () => {
        const store = await open();
        const t = topic();
        expect([...(await store.seen(t, ['a', 'b']))]).toEqual([]);
        expect(sorted(await store.record(t, ['a', 'b'], T0 + 60_000))).toEqual(['a', 'b']);
        expect(sorted(await store.seen(t, ['a', 'b', 'c']))).toEqual(['a', 'b']);
      });

      it('returns only the ids that were new when some were already recorded', async () => {
        const store = await open();
        const t = topic();
        await store.record(t, ['a'], T0 + 60_000);
        expect(sorted(await store.record(t, ['a', 'b'], T0 + 60_000))).toEqual(['b']);
      });

      it('records an id repeated in one call once', async () => {
        const store = await open();
        expect(await store.record(topic(), ['a', 'a'], T0 + 60_000)).toEqual(['a']);
      });

      it('keeps records per topic', async () => {
        const store = await open();
        const [one, two] = [topic(), topic()];
        await store.record(one, ['a'], T0 + 60_000);
        expect([...(await store.seen(two, ['a']))]).toEqual([]);
        expect(await store.record(two, ['a'], T0 + 60_000)).toEqual(['a']);
      });
    });

    describe('2. expiry and purge', () => {
      it('purges records that expired, keeps live ones, and counts what it removed', async () => {
        const store = await open();
        const t = topic();
        await store.record(t, ['short'], T0 + 1_000);
        await store.record(t, ['long'], T0 + 60_000);
        expect(await store.purge(T0 + 2_000)).toBeGreaterThanOrEqual(1);
        expect(sorted(await store.seen(t, ['short', 'long']))).toEqual(['long']);
      });

      it('purges a record at now == expiresAt, not before, and counts exactly what it removed', async () => {
        const store = await open();
        const t = topic();
        // Earlier than every other test's records, so a purge up to it removes only this test's.
        const expiresAt = T0 - 7 * 86_400_000;
        await store.purge(expiresAt + 1);
        await store.record(t, ['at'], expiresAt);
        await store.record(t, ['after'], expiresAt + 1);
        expect(await store.purge(expiresAt - 1)).toBe(0);
        expect(sorted(await store.seen(t, ['at', 'after']))).toEqual(['after', 'at']);
        expect(await store.purge(expiresAt)).toBe(1);
        expect(sorted(await store.seen(t, ['at', 'after']))).toEqual(['after']);
        expect(await store.record(t, ['at', 'after'], T0 + 60_000)).toEqual(['at']);
        expect(await store.purge(expiresAt + 1)).toBe(1);
        expect(sorted(await store.seen(t, ['at', 'after']))).toEqual(['at']);
      });

      it('keeps a record seen, and not new again, until a purge drops it: seen and record look at no clock', async () => {
        const store = await open();
        const t = topic();
        // Expired long ago on any clock, the adapter's own included; only purge(now) decides when a record goes.
        await store.purge(1);
        expect(await store.record(t, ['old'], 1)).toEqual(['old']);
        expect([...(await store.seen(t, ['old']))]).toEqual(['old']);
        expect(await store.record(t, ['old'], T0 + 60_000)).toEqual([]);
        expect(await store.purge(1)).toBe(1);
        expect([...(await store.seen(t, ['old']))]).toEqual([]);
      });

      it('treats a purged id as new again', async () => {
        const store = await open();
        const t = topic();
        await store.record(t, ['a'], T0 + 1_000);
        await store.purge(T0 + 2_000);
        expect(await store.record(t, ['a'], T0 + 60_000)).toEqual(['a']);
      });
    });

    describe('3. concurrency', () => {
      it('lets exactly one of many concurrent records of an id win', async () => {
        const store = await open();
        const t = topic();
        const ids = Array.from({ length: 100 }, (_, i) => `m-${i}`);
        const rounds = await Promise.all(Array.from({ length: 8 }, (_, n) => store.record(t, n % 2 === 0 ? ids : [...ids].reverse(), T0 + 60_000)));
        expect(sorted(rounds.flat())).toEqual(sorted(ids));
      });
    });

    describe('4. edge cases and closing', () => {
      it('answers empty input with empty results', async () => {
        const store = await open();
        expect([...(await store.seen(topic(), []))]).toEqual([]);
        expect(await store.record(topic(), [], T0)).toEqual([]);
      });

      it('closes twice without error, if it has anything to close', async () => {
        const store = await open();
        await store.close?.();
        await store.close?.();
      });
    });
  });
}

import { describe, expect, it } from 'vitest';
import { Tidings, silentLogger, type Lifecycle } from '@tidings/core';
import { decorateStorage, type StorageAdapter } from '@tidings/core/adapter';
import { memoryStorage } from '@tidings/adapter-memory';
import { checkDeliveries, checkSubscriptions, guaranteeHeld, seededRandom, withFaults, type DeliveryHistory, type Effect } from '@tidings/faults';

const LIFECYCLES: Lifecycle[] = ['at-most-once', 'at-least-once', 'exactly-once/broker', 'exactly-once/end-to-end'];

function verdicts(history: DeliveryHistory): Record<Lifecycle, boolean> {
  const check = checkDeliveries(history);
  return Object.fromEntries(LIFECYCLES.map((l) => [l, guaranteeHeld(l, check).held])) as Record<Lifecycle, boolean>;
}

describe('checkDeliveries on recorded histories', () => {
  it('passes a correct at-least-once history with duplicates as at-least-once, and fails it as exactly-once', () => {
    // k2's ack was lost; the producer retried under a fresh broker id and both copies were consumed.
    const history: DeliveryHistory = { lifecycle: 'at-least-once', sent: ['k1', 'k2', 'k3'], acked: ['k1', 'k2', 'k3'], consumed: ['k1', 'k2', 'k3', 'k2'] };
    expect(checkDeliveries(history)).toMatchObject({ sent: 3, acked: 3, delivered: 4, distinct: 3, lost: 0, duplicated: 1, unexpected: 0 });
    expect(verdicts(history)).toEqual({ 'at-most-once': false, 'at-least-once': true, 'exactly-once/broker': false, 'exactly-once/end-to-end': false });
    expect(guaranteeHeld('exactly-once/end-to-end', checkDeliveries(history)).rule).toMatch(/duplicated = 0 \(got 1 \(k2\)\)/);
  });

  it('fails at-least-once with lost = 1 on a history from a build that acked before storing', () => {
    // The broker acked k2, then died before writing it: the producer stopped retrying, nobody ever consumed it.
    const history: DeliveryHistory = {
      lifecycle: 'at-least-once',
      sent: ['k1', 'k2', 'k3'],
      acked: ['k1', 'k2', 'k3'],
      stored: ['k1', 'k3'],
      consumed: ['k1', 'k3'],
    };
    const check = checkDeliveries(history);
    expect(check).toMatchObject({ lost: 1, lostStored: 0, keys: { lost: ['k2'] } });
    const verdict = guaranteeHeld('at-least-once', check);
    expect(verdict.held).toBe(false);
    expect(verdict.rule).toBe('at-least-once: lost of acked = 0 (got 1 (k2)), unexpected = 0 (got 0)');
    // Broker scope promises only what was stored, so the same history keeps that (weaker) promise.
    expect(guaranteeHeld('exactly-once/broker', check).held).toBe(true);
  });

  it('lets at-most-once lose an acked message but never deliver one twice', () => {
    expect(verdicts({ lifecycle: 'at-most-once', sent: ['k1', 'k2'], acked: ['k1', 'k2'], consumed: ['k1'] })['at-most-once']).toBe(true);
    expect(verdicts({ lifecycle: 'at-most-once', sent: ['k1', 'k2'], acked: ['k1', 'k2'], consumed: ['k1', 'k1'] })['at-most-once']).toBe(false);
  });

  it('fails at-most-once when a message a crash hit is consumed again by a later incarnation', () => {
    // k2 was leased by run 0, which died before handling it; at-most-once deleted it at hand-out, so run 1 must not see it.
    const history: DeliveryHistory = {
      lifecycle: 'at-most-once',
      sent: ['k1', 'k2'],
      acked: [],
      stored: ['k1', 'k2'],
      consumed: ['k1', { key: 'k2', incarnation: 1 }],
      crashed: [{ key: 'k2', incarnation: 0 }],
    };
    const verdict = guaranteeHeld('at-most-once', checkDeliveries(history));
    expect(verdict).toEqual({ held: false, rule: 'at-most-once: duplicated = 0 (got 0), redelivered after a crash = 0 (got 1 (k2)), unexpected = 0 (got 0)' });
    // The same crash followed by no later effect is what at-most-once allows: the message is lost, never redelivered.
    expect(guaranteeHeld('at-most-once', checkDeliveries({ ...history, consumed: ['k1'] })).held).toBe(true);
  });

  it('counts a consumed message that no producer sent as unexpected, which no semantic allows', () => {
    const history: DeliveryHistory = { lifecycle: 'exactly-once/end-to-end', sent: ['k1'], acked: ['k1'], consumed: ['k1', 'ghost'] };
    expect(checkDeliveries(history)).toMatchObject({ unexpected: 1, keys: { unexpected: ['ghost'] } });
    expect(Object.values(verdicts(history))).toEqual([false, false, false, false]);
  });

  it('does not count an unacked but stored message as unexpected', () => {
    // exactly-once/broker needs no ack: k2 was stored but its ack never arrived.
    const history: DeliveryHistory = { lifecycle: 'exactly-once/broker', sent: ['k1'], acked: ['k1'], stored: ['k1', 'k2'], consumed: ['k1', 'k2'] };
    expect(checkDeliveries(history)).toMatchObject({ unexpected: 0, lostStored: 0 });
  });

  it('counts as recovered a message a crash hit that a later incarnation delivered', () => {
    const history: DeliveryHistory = {
      lifecycle: 'exactly-once/end-to-end',
      sent: ['k1', 'k2', 'k3'],
      acked: ['k1', 'k2', 'k3'],
      consumed: ['k1', { key: 'k2', incarnation: 1 }, { key: 'k3', incarnation: 2 }],
      // k2 crashed in run 0 and was consumed in run 1; k3 crashed in run 2 and was consumed in that same run, before the crash.
      crashed: [
        { key: 'k2', incarnation: 0 },
        { key: 'k3', incarnation: 2 },
      ],
    };
    expect(checkDeliveries(history)).toMatchObject({ recovered: 1, keys: { recovered: ['k2'] }, lost: 0, duplicated: 0 });
    expect(verdicts(history)['exactly-once/end-to-end']).toBe(true);
  });

  it('still counts as duplicated a key a crash hit that then had two effects, so exactly-once does not hold', () => {
    // k2's first incarnation recorded its effect and crashed before the delete; the next incarnation ran it again.
    const history: DeliveryHistory = {
      lifecycle: 'exactly-once/end-to-end',
      sent: ['k1', 'k2'],
      acked: ['k1', 'k2'],
      consumed: ['k1', { key: 'k2', incarnation: 0 }, { key: 'k2', incarnation: 1 }],
      crashed: [{ key: 'k2', incarnation: 0 }],
    };
    const check = checkDeliveries(history);
    expect(check).toMatchObject({ delivered: 3, distinct: 2, duplicated: 1, recovered: 1, lost: 0, keys: { duplicated: ['k2'], recovered: ['k2'] } });
    const verdict = guaranteeHeld('exactly-once/end-to-end', check);
    expect(verdict.held).toBe(false);
    expect(verdict.rule).toMatch(/duplicated = 0 \(got 1 \(k2\)\)/);
    expect(verdicts(history)).toEqual({ 'at-most-once': false, 'at-least-once': true, 'exactly-once/broker': false, 'exactly-once/end-to-end': false });
  });

  it('judges broker scope from what was stored and end-to-end scope from what was acked', () => {
    // k2 was stored (and lost by the consumer side); k3 was acked but the history's broker never held it.
    const history: DeliveryHistory = {
      lifecycle: 'exactly-once/broker',
      sent: ['k1', 'k2', 'k3'],
      acked: ['k1', 'k3'],
      stored: ['k1', 'k2'],
      consumed: ['k1'],
    };
    const check = checkDeliveries(history);
    expect(check).toMatchObject({ lost: 1, lostStored: 1, keys: { lost: ['k3'], lostStored: ['k2'] } });
    expect(guaranteeHeld('exactly-once/broker', check).rule).toMatch(/lost of stored = 0 \(got 1 \(k2\)\)/);
    expect(guaranteeHeld('exactly-once/end-to-end', check).rule).toMatch(/lost of acked = 0 \(got 1 \(k3\)\)/);
  });

  it('refuses a history that is not one', () => {
    expect(() => checkDeliveries({ lifecycle: 'at-least-once', sent: 'k1', acked: [], consumed: [] } as never)).toThrow(
      /DeliveryHistory.sent must be an array/,
    );
    expect(() => guaranteeHeld('exactly-twice' as never, checkDeliveries({ lifecycle: 'at-least-once', sent: [], acked: [], consumed: [] }))).toThrow(
      /guaranteeHeld needs a lifecycle/,
    );
  });
});

/**
 * A deliberately broken broker: it acks some batches without storing them, as a build that acked
 * before its write reached disk would after a crash.
 */
function ackBeforeStore<Tx>(storage: StorageAdapter<Tx>, seed: number, rate: number): StorageAdapter<Tx> {
  const random = seededRandom(seed);
  return decorateStorage(storage, {
    store: async (req: Parameters<StorageAdapter<Tx>['store']>[0], tx?: Tx) =>
      random() < rate ? req.messages.map((m) => ({ id: m.id, duplicate: false })) : storage.store(req, tx),
  });
}

/** Runs producers and a consumer over `storage` and writes down, by payload key, what each was told and did. */
async function recordRun(storage: StorageAdapter<any>, lifecycle: 'at-least-once' | 'exactly-once/end-to-end', messages: number): Promise<DeliveryHistory> {
  const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
  try {
    const topic = tidings.topic<{ key: string }>(`checker.${process.pid}.${lifecycle.replace('/', '.')}`, {
      semantic: lifecycle === 'at-least-once' ? 'at-least-once' : 'exactly-once',
      leaseMs: 200,
      retry: { attempts: 20, initialMs: 1, maxMs: 2 },
    });
    const history: DeliveryHistory = { lifecycle, sent: [], acked: [], consumed: [] };
    for (let i = 0; i < messages; i++) {
      const key = `order-${i}`;
      history.sent.push(key);
      // At-least-once sends without an id, so a retry after a lost ack is a new broker message with the same key.
      await topic.send({ key }, lifecycle === 'at-least-once' ? {} : { id: key });
      history.acked.push(key);
    }
    const consumer = topic.consume((m) => void history.consumed.push(m.payload.key), { pollMs: 5, batchSize: 10 });
    const deadline = Date.now() + 5_000;
    while (Object.keys((await tidings.counts(topic.name))[topic.name] ?? {}).length > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await consumer.stop();
    return history;
  } finally {
    await tidings.close();
  }
}

describe('checkDeliveries on a recorded run', () => {
  const seed = 20240601;
  const faults = { seed, lostAckRate: 0.2 };

  it('catches a broker that acks before storing: lost > 0, and at-least-once does not hold', async () => {
    const storage = withFaults(ackBeforeStore(memoryStorage(), seed, 0.1), faults);
    const check = checkDeliveries(await recordRun(storage, 'at-least-once', 100));
    expect(check.lost).toBeGreaterThan(0);
    const verdict = guaranteeHeld('at-least-once', check);
    expect(verdict.held, `seed ${seed}: ${verdict.rule}`).toBe(false);
  });

  it('passes the real memory storage under the same seed and lost-ack faults: at-least-once holds, with duplicates', async () => {
    const storage = withFaults(memoryStorage(), faults);
    const check = checkDeliveries(await recordRun(storage, 'at-least-once', 100));
    const verdict = guaranteeHeld('at-least-once', check);
    expect(verdict.held, `seed ${seed}: ${verdict.rule}`).toBe(true);
    expect(storage.faults.lostAcks).toBeGreaterThan(0);
    expect(check.duplicated).toBeGreaterThan(0);
  });

  it('passes end-to-end exactly-once on the real memory storage under the same faults', async () => {
    const storage = withFaults(memoryStorage(), { ...faults, duplicateSendRate: 0.2 });
    const check = checkDeliveries(await recordRun(storage, 'exactly-once/end-to-end', 100));
    const verdict = guaranteeHeld('exactly-once/end-to-end', check);
    expect(verdict.held, `seed ${seed}: ${verdict.rule}`).toBe(true);
    expect(check).toMatchObject({ acked: 100, distinct: 100, delivered: 100 });
  });
});

describe('the checker on ordered histories with subscriptions', () => {
  const sent = ['a0', 'a1', 'a2', 'b0'];
  const effect = (key: string, subscription: string, over: Partial<Effect> = {}): Effect => ({
    key,
    incarnation: 0,
    subscription,
    orderingKey: key[0],
    position: Number(key.slice(1)),
    ...over,
  });

  it('counts nothing out of order when each key comes in order, a redelivery after a crash included', () => {
    const consumed = [effect('a0', 's'), effect('b0', 's'), effect('a1', 's'), effect('a1', 's', { incarnation: 1 }), effect('a2', 's', { incarnation: 1 })];
    const check = checkDeliveries({ lifecycle: 'at-least-once', sent, acked: sent, consumed });
    expect(check).toMatchObject({ ordered: true, outOfOrder: 0, duplicated: 1, lost: 0 });
    expect(guaranteeHeld('at-least-once', check)).toEqual({
      held: true,
      rule: 'at-least-once: out of order = 0 (got 0), lost of acked = 0 (got 0), unexpected = 0 (got 0)',
    });
  });

  it('counts an effect recorded after one of a later message of its key, and a handler that overtook an unsettled one', () => {
    const consumed = [effect('a0', 's'), effect('a2', 's'), effect('a1', 's'), effect('b0', 's', { overtook: true })];
    const check = checkDeliveries({ lifecycle: 'exactly-once/end-to-end', sent, acked: sent, consumed });
    expect(check.keys.outOfOrder.sort()).toEqual(['a1', 'b0']);
    const verdict = guaranteeHeld('exactly-once/end-to-end', check);
    expect(verdict.held).toBe(false);
    expect(verdict.rule).toMatch(/out of order = 0 \(got 2 \(a1, b0\)\)/);
    // At-most-once hands a message out once and for all: across consumers it promises no order.
    expect(guaranteeHeld('at-most-once', check).rule).not.toMatch(/out of order/);
  });

  it('judges each subscription on its own: every one must get every message, in order', () => {
    const consumed = [...sent.map((k) => effect(k, 'billing')), effect('a0', 'email'), effect('a2', 'email'), effect('b0', 'email')];
    const checks = checkSubscriptions({ lifecycle: 'exactly-once/end-to-end', sent, acked: sent, consumed });
    expect(Object.keys(checks)).toEqual(['billing', 'email']);
    expect(checks.billing).toMatchObject({ lost: 0, outOfOrder: 0, duplicated: 0, delivered: 4 });
    expect(checks.email).toMatchObject({ lost: 1, outOfOrder: 0, keys: expect.objectContaining({ lost: ['a1'] }) });
    expect(guaranteeHeld('exactly-once/end-to-end', checks.email!).held).toBe(false);
  });
});

import { describe, expect, it } from 'vitest';
import {
  decorateStorage,
  type SubscriptionCounts,
  type SubscriptionRecord,
  type StorageAdapter,
  type StoreRequest,
  type StoreResult,
  type TopicRecord,
} from '../src/adapter.js';

/** A minimal adapter that keeps its state in a #private field, as a real class adapter would. */
class PrivateStorage implements StorageAdapter<undefined> {
  readonly name = 'private';
  #stored: string[] = [];
  async store(req: StoreRequest): Promise<StoreResult[]> {
    this.#stored.push(...req.messages.map((m) => m.id));
    return req.messages.map((m) => ({ id: m.id, duplicate: false }));
  }
  async counts(): Promise<SubscriptionCounts> {
    return { t: { default: { stored: this.#stored.length } } };
  }
  lease = async () => [];
  extendLease = async () => false;
  settle = async () => [];
  release = async () => [];
  expire = async () => [];
  redrive = async () => [];
  peek = async () => [];
  purge = async () => 0;
  declareTopic = async (topic: TopicRecord) => topic;
  topics = async () => [];
  declareSubscription = async (subscription: SubscriptionRecord) => subscription;
  subscriptions = async () => [];
  removeSubscription = async () => 0;
  transaction = <T>(fn: (tx: undefined) => Promise<T>) => fn(undefined);
  close = async () => {};
}

const request = (id: string): StoreRequest => ({ topic: 't', state: 'stored', messages: [{ id, body: '{}', availableAt: 0 }], now: 0 });

describe('decorateStorage', () => {
  it('lets an override win over the inner member', async () => {
    const decorated = decorateStorage(new PrivateStorage(), { name: 'decorated', store: async () => [{ id: 'x', duplicate: true }] });
    expect(decorated.name).toBe('decorated');
    expect(await decorated.store(request('a'))).toEqual([{ id: 'x', duplicate: true }]);
  });

  it('binds members it does not override to the inner adapter, so its #private fields work', async () => {
    const inner = new PrivateStorage();
    const decorated = decorateStorage(inner, { peek: async () => [] });
    await decorated.store(request('a'));
    expect(await decorated.counts()).toEqual({ t: { default: { stored: 1 } } });
    expect(await inner.counts()).toEqual({ t: { default: { stored: 1 } } });
  });

  it('answers `in` for optional members as the inner adapter does', () => {
    const without = decorateStorage(new PrivateStorage(), {});
    expect('watch' in without).toBe(false);
    const withWatch = decorateStorage(Object.assign(new PrivateStorage(), { watch: () => () => {} }), {});
    expect('watch' in withWatch).toBe(true);
    expect('watch' in decorateStorage(new PrivateStorage(), { watch: () => () => {} })).toBe(true);
  });

  it('shows extra members of the overrides', () => {
    const faults = { lostAcks: 3 };
    const decorated = decorateStorage(new PrivateStorage(), { faults });
    expect(decorated.faults).toBe(faults);
    expect('faults' in decorated).toBe(true);
  });
});

import { DEFAULT_SUBSCRIPTION, type TidingsEventBus } from '@tidings/core';
import { recordedLedger, type StorageAdapter, type SubscriptionLedger, type TopicRecord } from '@tidings/core/adapter';
import { DashboardRequestError } from './errors.js';

/** One subscription of a recorded topic, as a request names it, with the ledger every operator verb goes through. */
export interface Target {
  record: TopicRecord;
  subscription: string;
  maxDeliveries: number;
  ledger: SubscriptionLedger;
}

/**
 * Finds the subscription a request names in what storage records, so that a dashboard without the topic's
 * declaration (another process's topic, or standalone) acts with the recorded lifecycle, ordering and limits.
 */
export class Targets {
  constructor(
    private readonly storage: StorageAdapter<any>,
    private readonly now: () => number,
    /** The instance's bus, when there is one: its metrics and live page see the operator's acts and transitions. */
    private readonly events?: TidingsEventBus,
  ) {}

  /**
   * The named subscription of `topic`, which the topic must have, or its default one; refused when the topic has
   * subscriptions and none is `default`, since the page cannot guess which one was meant.
   */
  async resolve(topic: unknown, named: unknown): Promise<Target> {
    if (typeof topic !== 'string' || topic === '')
      throw new DashboardRequestError(400, 'INVALID_REQUEST', '"topic" must name a topic, e.g. {"topic": "orders"}.');
    if (named !== undefined && (typeof named !== 'string' || named === '')) {
      throw new DashboardRequestError(
        400,
        'INVALID_REQUEST',
        `"subscription", when given, must name a subscription of the topic, e.g. {"topic": "${topic}", "subscription": "billing"}; leave it out for the default one.`,
      );
    }
    const record = (await this.storage.topics()).find((t) => t.name === topic);
    if (!record) throw new DashboardRequestError(404, 'UNKNOWN_TOPIC', `Topic "${topic}" is not recorded in this storage: check the name.`);
    const records = await this.storage.subscriptions(topic);
    const name = (named as string | undefined) ?? DEFAULT_SUBSCRIPTION;
    // Counting copies groups every message of the topic: only for a name the records lack (copies of an old schema).
    const known = records.some((s) => s.name === name)
      ? [name]
      : [...new Set([...records.map((s) => s.name), ...Object.keys((await this.storage.counts(topic))[topic] ?? {})])].sort();
    if (!known.includes(name) && !(named === undefined && known.length === 0)) {
      const list = known.join(', ');
      if (named === undefined) {
        throw new DashboardRequestError(
          400,
          'SUBSCRIPTION_REQUIRED',
          `Topic "${topic}" has no default subscription: name one of ${list}, e.g. {"topic": "${topic}", "subscription": "${known[0]}"}.`,
        );
      }
      throw new DashboardRequestError(
        404,
        'UNKNOWN_SUBSCRIPTION',
        `Topic "${topic}" has no subscription "${name}"${known.length === 0 ? '' : `; its subscriptions are ${list}`}.`,
      );
    }
    const maxDeliveries = records.find((s) => s.name === name)?.maxDeliveries ?? record.maxDeliveries;
    const ledger = recordedLedger(this.storage, record, { name, maxDeliveries }, { clock: { now: this.now }, events: this.events });
    return { record, subscription: name, maxDeliveries, ledger };
  }

  /** How many copies the subscription holds in `state`, for a confirmation that says what it is about to drop. */
  async count(target: Target, state: string | undefined): Promise<number> {
    if (state === undefined) return 0;
    const copies = await this.storage.counts(target.record.name);
    return (copies[target.record.name]?.[target.subscription] as Record<string, number> | undefined)?.[state] ?? 0;
  }
}

import { InvalidOptionsError, type MessageState } from '@tidings/core';
import { lifecyclePlans, type SubscriptionRecord } from '@tidings/core/adapter';
import type { DbOptions, Output } from './commands.js';
import { assertTopic, subscriptionsOf, withDatabase } from './database.js';
import { SubscriptionLeasedError, UnknownSubscriptionError } from './errors.js';
import { table } from './table.js';

/** Options of `tidings subscriptions list`. */
export interface SubscriptionsListOptions extends DbOptions {
  /** Only this topic's subscriptions. */
  topic?: string;
  json?: boolean;
}

/** A recorded subscription with the copies it holds. */
export interface SubscriptionListing extends SubscriptionRecord {
  counts: Partial<Record<MessageState, number>>;
  /** Copies it holds, in every state. */
  messages: number;
}

/** Options of `tidings subscriptions remove`. */
export interface SubscriptionsRemoveOptions extends DbOptions {
  topic: string;
  subscription: string;
  /** Remove it even while some of its copies are leased. */
  force?: boolean;
  json?: boolean;
}

/** What `tidings subscriptions remove` did: the copies dropped with the subscription, and how many of them were leased. */
export interface SubscriptionsRemoveResult {
  dropped: number;
  leased: number;
}

/** The subscriptions the registry records (of one topic, or of all), with their copies: prints a table (or JSON) and returns them. */
export async function subscriptionsList(options: SubscriptionsListOptions, output: Output): Promise<SubscriptionListing[]> {
  const { topic } = options;
  return withDatabase(options.db, async (database) => {
    if (topic !== undefined) await assertTopic(database, topic, true);
    const [records, counts] = await Promise.all([database.storage.subscriptions(topic), database.storage.counts(topic)]);
    const listed = records.map((r): SubscriptionListing => {
      const c = { ...counts[r.topic]?.[r.name] };
      return { ...r, counts: c, messages: Object.values(c).reduce((a, n) => a + (n ?? 0), 0) };
    });
    if (options.json) {
      const iso = (at: number | undefined) => (at === undefined ? null : new Date(at).toISOString());
      const shown = listed.map((s) => ({ ...s, deadLetter: s.deadLetter ?? null, declaredAt: iso(s.declaredAt), pausedAt: iso(s.pausedAt) }));
      output.out(JSON.stringify({ db: database.name, subscriptions: shown }, null, 2));
    } else if (listed.length === 0) {
      output.out(topic === undefined ? `${database.target} records no subscriptions.` : `Topic "${topic}" has no subscriptions (${database.target}).`);
    } else {
      // A paused column only when something is paused, as in `tidings stats`.
      const paused = listed.some((s) => s.pausedAt !== undefined);
      const pausedCell = (s: SubscriptionListing) => (paused ? [s.pausedAt === undefined ? '' : new Date(s.pausedAt).toISOString()] : []);
      const rows = listed.map((s) => [
        s.topic,
        s.name,
        String(s.maxDeliveries),
        s.deadLetter ?? '',
        new Date(s.declaredAt).toISOString(),
        String(s.messages),
        ...pausedCell(s),
      ]);
      const headers = ['topic', 'subscription', 'max deliveries', 'dead letters to', 'declared', 'messages', ...(paused ? ['paused since'] : [])];
      output.out(`${database.target}\n${table(headers, rows, [false, false, true, false, false, true, false])}`);
    }
    return listed;
  });
}

/**
 * Forgets a subscription and drops every copy it holds. Refused with `SubscriptionLeasedError` while any of its
 * copies is leased, unless `force`: this process cannot see consumers elsewhere, only their leases.
 */
export async function subscriptionsRemove(options: SubscriptionsRemoveOptions, output: Output): Promise<SubscriptionsRemoveResult> {
  const { topic, subscription } = options;
  if (typeof subscription !== 'string' || subscription === '')
    throw new InvalidOptionsError('subscriptions remove needs a subscription name, e.g. tidings subscriptions remove orders billing.');
  return withDatabase(options.db, async (database) => {
    const { storage } = database;
    await assertTopic(database, topic, true);
    const known = await subscriptionsOf(database, topic);
    if (!known.includes(subscription)) throw new UnknownSubscriptionError(subscription, topic, known, database.target);
    const record = (await storage.topics()).find((t) => t.name === topic);
    // Every lifecycle leases into `leased`; the recorded plan says so where there is a record.
    const leasedState: MessageState = record ? lifecyclePlans[record.lifecycle].leased : 'leased';
    const leased = (await storage.counts(topic))[topic]?.[subscription]?.[leasedState] ?? 0;
    if (leased > 0 && !options.force) throw new SubscriptionLeasedError(topic, subscription, leased);
    const dropped = await storage.removeSubscription(topic, subscription);
    if (options.json) {
      output.out(JSON.stringify({ db: database.name, topic, subscription, dropped, leased, forced: options.force === true }, null, 2));
    } else {
      const of = leased > 0 ? ` (${leased} of them leased: their consumers lose the leases)` : '';
      output.out(
        `Removed subscription "${subscription}" of topic "${topic}" from ${database.target}, with the ${dropped} cop${dropped === 1 ? 'y' : 'ies'} of messages it held${of}.`,
      );
    }
    return { dropped, leased };
  });
}

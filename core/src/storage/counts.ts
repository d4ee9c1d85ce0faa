import type { StateCounts, SubscriptionCounts } from './contract.js';

/** Each topic's counts by state over all its subscriptions: how many copies it holds in each state. */
export function topicTotals(counts: SubscriptionCounts): StateCounts {
  const out: StateCounts = {};
  for (const [topic, subscriptions] of Object.entries(counts)) {
    const sum: StateCounts[string] = (out[topic] = {});
    for (const states of Object.values(subscriptions)) {
      for (const [state, n] of Object.entries(states) as Array<[keyof typeof sum, number]>) sum[state] = (sum[state] ?? 0) + n;
    }
  }
  return out;
}

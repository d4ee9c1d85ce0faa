import { DEFAULT_SUBSCRIPTION } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';

/** Records the default subscription of each topic, as declaring the topic does: a store keeps copies only for recorded subscriptions. */
export async function subscribe(storage: StorageAdapter<any>, ...topics: string[]): Promise<void> {
  for (const topic of topics) await storage.declareSubscription({ topic, name: DEFAULT_SUBSCRIPTION, maxDeliveries: 5, declaredAt: 0 });
}

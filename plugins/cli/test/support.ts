import { recordedLedger } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';

/** Leases one of a subscription's copies as a consumer in another process would, and keeps it; resolves to its id. */
export async function leaseOne(file: string, topic: string, subscription = 'default'): Promise<string> {
  const storage = sqliteStorage({ file });
  await storage.open?.();
  try {
    const record = (await storage.topics()).find((t) => t.name === topic)!;
    const [leased] = await recordedLedger(storage, record, { name: subscription, maxDeliveries: 5 }).lease({
      limit: 1,
      leaseMs: 600_000,
      leaseToken: 'another-process',
    });
    return leased!.id;
  } finally {
    await storage.close();
  }
}

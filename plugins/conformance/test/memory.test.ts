import { memoryStorage, type MemoryStorage } from '@tidings/adapter-memory';
import { describeIdempotencyStore, describeStorageAdapter } from '@tidings/conformance';
import { memoryIdempotency } from '@tidings/idempotency';

// One instance per key: two handles on one key are then two brokers sharing the same memory.
const byKey = new Map<string, MemoryStorage>();
const sharedMemory = ({ key }: { key: string }) => {
  if (!byKey.has(key)) byKey.set(key, memoryStorage());
  return byKey.get(key)!;
};

// Two handles are one instance: another handle sees a transaction's writes before it commits; closed, it keeps nothing.
describeStorageAdapter('memory', sharedMemory, { isolation: false, persistent: false });
describeIdempotencyStore('memory', memoryIdempotency);
// The store memory storage brings for exactly-once topics, which shares its transactions.
describeIdempotencyStore('memory storage', () => memoryStorage().idempotencyStore());

export { describeStorageAdapter, type StorageSuiteOptions } from './storage-suite.js';
export { describeIdempotencyStore } from './idempotency-suite.js';
export type { StorageFactory, IdempotencyFactory } from './harness.js';

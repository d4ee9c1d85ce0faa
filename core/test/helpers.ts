import type { MemoryTransaction } from '@tidings/adapter-memory';
import { memoryStorage } from '@tidings/adapter-memory';
import { Tidings, type TidingsOptions } from '../src/index.js';

/** Polls `check` until it returns true or `ms` pass. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A Tidings instance over memory storage with fast polling defaults. */
export function memoryTidings(options: TidingsOptions<MemoryTransaction> = {}) {
  return Tidings.create({ storage: memoryStorage(), purgeIntervalMs: 0, ...options });
}

let n = 0;
/** A topic name no other test uses. */
export function uniqueTopic(prefix = 't'): string {
  return `${prefix}.${process.pid}.${++n}`;
}

import { readFileSync } from 'node:fs';
import { memoryStorage } from '@tidings/adapter-memory';
import { ForeignEntityManagerError, IrreversibleMigrationError, SchemaError } from '@tidings/adapter-mikro-orm';
import {
  AckTimeoutError,
  ClosedError,
  IllegalTransitionError,
  InvalidMessageError,
  InvalidOptionsError,
  InvalidTopicError,
  LeaseLostError,
  OperationNotSupportedError,
  PayloadTooLargeError,
  silentLogger,
  StorageError,
  SubscriptionInUseError,
  Tidings,
  TIDINGS_ERROR_CODES,
  TidingsError,
  TopicConflictError,
  UnknownSubscriptionError,
  type StorageErrorCode,
  type TidingsErrorCode,
} from '@tidings/core';
import { decorateStorage } from '@tidings/core/adapter';
import { withFaults } from '@tidings/faults';
import { afterEach, describe, expect, it } from 'vitest';

/** The codes a failed send is retried on: changing this list changes what a send does when storage fails. */
const RETRIED: TidingsErrorCode[] = ['ACK_TIMEOUT', 'STORAGE_ERROR', 'STORAGE_BUSY', 'CONNECTION_LOST'];
const STORAGE_CODES: StorageErrorCode[] = ['STORAGE_ERROR', 'STORAGE_BUSY', 'CONNECTION_LOST', 'STORAGE_FULL', 'STORAGE_READ_ONLY'];

/** One error of each code, made by its class; the codes raised inline are made as their raisers make them. */
const raised: TidingsError[] = [
  new InvalidMessageError(''),
  new PayloadTooLargeError(2, 1, 't'),
  new InvalidTopicError(''),
  new InvalidOptionsError(''),
  new TopicConflictError(''),
  new ClosedError('t'),
  new IllegalTransitionError('at-least-once', 'acked', 'CONSUME'),
  new AckTimeoutError('t', undefined, 1),
  new LeaseLostError('t', 'm'),
  new SubscriptionInUseError('t', 's', 1, 0),
  new UnknownSubscriptionError('t', 's'),
  new OperationNotSupportedError('x', 'browse', 'browse'),
  ...(['ROLLBACK', 'ABANDONED', 'HANDLER_FAILED', 'TRANSACTION_HANDLE_REQUIRED', 'SQLITE_DRIVER_MISSING'] as const).map((code) => new TidingsError(code, '')),
  ...STORAGE_CODES.map((code) => new StorageError('', { code })),
  new SchemaError(''),
  new ForeignEntityManagerError('t', 'send', undefined),
  new IrreversibleMigrationError(''),
];

/** The rows of docs/errors.md's table of core's and the adapters' codes: code to its retryable cell. */
function documented(): Map<string, string> {
  const page = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
  const section = page.split(/^## /m).find((s) => s.startsWith('Core and the storage adapters'))!;
  return new Map([...section.matchAll(/^\| `([A-Z_]+)` \|.*\| (yes|no) \|$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe('error codes', () => {
  it('are each raised by one of the errors above (TIDINGS_ERROR_CODES lists exactly what core and the adapters raise)', () => {
    expect(raised.map((e) => e.code).sort()).toEqual([...TIDINGS_ERROR_CODES].sort());
  });

  it('are retryable exactly when a failed send is retried on them', () => {
    expect(
      raised
        .filter((e) => e.retryable)
        .map((e) => e.code)
        .sort(),
    ).toEqual([...RETRIED].sort());
  });

  it('are each documented in docs/errors.md, with whether they are retryable', () => {
    const rows = documented();
    expect([...rows.keys()].sort()).toEqual([...TIDINGS_ERROR_CODES].sort());
    for (const e of raised) expect(rows.get(e.code), e.code).toBe(e.retryable ? 'yes' : 'no');
  });
});

describe('a send whose store fails', () => {
  const open: Tidings[] = [];
  afterEach(async () => {
    await Promise.all(open.splice(0).map((t) => t.close()));
  });

  /** A topic whose store fails `failures` times with `error`; answers the store calls made. */
  async function failingTopic(error: unknown, failures: number) {
    const inner = memoryStorage();
    let calls = 0;
    const storage = decorateStorage(inner, {
      store: (req: Parameters<typeof inner.store>[0], tx?: Parameters<typeof inner.store>[1]) =>
        ++calls <= failures ? Promise.reject(error) : inner.store(req, tx),
    });
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    open.push(tidings);
    const topic = tidings.topic('orders', { semantic: 'at-least-once', retry: { attempts: 3, initialMs: 1, maxMs: 1 } });
    return { topic, calls: () => calls };
  }

  it.each(STORAGE_CODES)('with %s is retried only if the code is retryable', async (code) => {
    const { topic, calls } = await failingTopic(new StorageError('injected', { code }), 1);
    if (RETRIED.includes(code)) {
      await expect(topic.send('x')).resolves.toMatchObject({ duplicate: false });
      expect(calls()).toBe(2);
    } else {
      await expect(topic.send('x')).rejects.toMatchObject({ code });
      expect(calls()).toBe(1);
    }
  });

  it('with an error that is not a TidingsError is retried', async () => {
    const { topic, calls } = await failingTopic(new Error('driver said no'), 1);
    await expect(topic.send('x')).resolves.toMatchObject({ duplicate: false });
    expect(calls()).toBe(2);
  });

  it("with the fault injector's lost ack (ACK_LOST, retryable) is retried until the attempts run out", async () => {
    const storage = withFaults(memoryStorage(), { seed: 1, lostAckRate: 1 });
    const tidings = await Tidings.create({ storage, purgeIntervalMs: 0, logger: silentLogger });
    open.push(tidings);
    const topic = tidings.topic('orders', { semantic: 'at-least-once', retry: { attempts: 3, initialMs: 1, maxMs: 1 } });
    await expect(topic.send('x')).rejects.toMatchObject({ code: 'ACK_TIMEOUT', cause: { code: 'ACK_LOST', retryable: true } });
    expect(storage.faults.lostAcks).toBe(3);
  });
});

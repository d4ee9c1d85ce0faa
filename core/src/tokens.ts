import type { InjectionToken } from 'tsyringe';
import type { TidingsEventBus } from './events.js';
import type { IdempotencyStore } from './storage/idempotency.js';
import type { TidingsPlugin } from './plugin.js';
import type { Clock, IdGenerator, Logger } from './services.js';
import type { StorageAdapter } from './storage/contract.js';

/** Injection tokens of one Tidings instance's child container; register your own to replace a part. */
export const Tokens = {
  /** The `StorageAdapter`. */
  Storage: Symbol('tidings.storage') as InjectionToken<StorageAdapter>,
  /** The `IdempotencyStore` of exactly-once consumers. */
  Idempotency: Symbol('tidings.idempotency') as InjectionToken<IdempotencyStore>,
  /** The `Clock`. */
  Clock: Symbol('tidings.clock') as InjectionToken<Clock>,
  /** The `IdGenerator` for message ids and lease tokens. */
  IdGenerator: Symbol('tidings.ids') as InjectionToken<IdGenerator>,
  /** The `Logger`. */
  Logger: Symbol('tidings.logger') as InjectionToken<Logger>,
  /** The instance's `TidingsEventBus`. */
  Events: Symbol('tidings.events') as InjectionToken<TidingsEventBus>,
  /** A `TidingsPlugin`; register several (each with its own `register` call), all are used, after those passed to `create`. */
  Plugin: Symbol('tidings.plugin') as InjectionToken<TidingsPlugin>,
} as const;

import { container as rootContainer, type DependencyContainer, type InjectionToken } from 'tsyringe';
import { InvalidOptionsError } from './errors.js';
import { TidingsEventBus } from './events.js';
import type { IdempotencyStore } from './storage/idempotency.js';
import type { TidingsPlugin } from './plugin.js';
import { stderrLogger, systemClock, timeOrderedIds, type Clock, type IdGenerator, type Logger } from './services.js';
import type { StorageAdapter } from './storage/contract.js';
import { Tokens } from './tokens.js';

/** The parts of one instance `Tidings.create` takes; any left out is resolved from `container`, then defaulted. */
export interface ContainerParts<Tx> {
  /** Where messages live, e.g. `memoryStorage()` or `sqliteStorage({ file })`. */
  storage?: StorageAdapter<Tx>;
  /** Idempotency store of exactly-once consumers (default: the storage's own, sharing its transactions). */
  idempotency?: IdempotencyStore<Tx>;
  /** Time as Tidings sees it (default: the system clock; `ManualClock` in tests). */
  clock?: Clock;
  /** Makes message ids and lease tokens (default: `timeOrderedIds()`; `uuidGenerator` for random v4 UUIDs). */
  ids?: IdGenerator;
  /** Where Tidings writes what it does not throw (default: stderr). */
  logger?: Logger;
  /** Parent container; Tidings registers only in a child of it (default: tsyringe's root container). */
  container?: DependencyContainer;
  /** Plugins that watch or wrap delivery (metrics, traces, validation), outermost first; more can be registered under `Tokens.Plugin`. */
  plugins?: TidingsPlugin[];
}

/** Makes the instance's child container with every part pinned in it; throws `InvalidOptionsError` without a storage. */
export function wireContainer<Tx>(options: ContainerParts<Tx>): { child: DependencyContainer; storage: StorageAdapter<Tx>; plugins: TidingsPlugin[] } {
  const child = (options.container ?? rootContainer).createChildContainer();
  // Each part is resolved once and pinned in the child: a transient `useClass` registration in the parent
  // must not give producers, consumers and close() each their own storage or idempotency store.
  const provide = <T>(token: InjectionToken<T>, value: T | undefined, fallback?: () => T | undefined) => {
    const chosen = value ?? (child.isRegistered(token, true) ? child.resolve(token) : fallback?.());
    if (chosen !== undefined) child.register(token, { useValue: chosen });
  };
  // The simple parts first, so a storage or idempotency class that injects them gets this instance's.
  provide(Tokens.Clock, options.clock, () => systemClock);
  provide(Tokens.IdGenerator, options.ids, () => timeOrderedIds());
  provide(Tokens.Logger, options.logger, () => stderrLogger);
  provide(Tokens.Events, undefined, () => new TidingsEventBus());
  provide(Tokens.Storage, options.storage);
  if (!child.isRegistered(Tokens.Storage, true)) {
    throw new InvalidOptionsError(
      'Tidings.create needs a storage adapter: pass { storage: memoryStorage() } from @tidings/adapter-memory, or register one under Tokens.Storage.',
    );
  }
  const storage = child.resolve(Tokens.Storage);
  provide(Tokens.Idempotency, options.idempotency, () => storage.idempotencyStore?.() as IdempotencyStore);
  const plugins = [...(options.plugins ?? []), ...(child.isRegistered(Tokens.Plugin, true) ? child.resolveAll(Tokens.Plugin) : [])];
  return { child, storage: storage as StorageAdapter<Tx>, plugins };
}

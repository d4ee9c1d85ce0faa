import type { ModuleMetadata } from '@nestjs/common';
import type { TidingsOptions, TopicOptions } from '@tidings/core';

/** What `TidingsModule.forRoot` takes: `Tidings.create`'s options, plus defaults for every declared topic. */
export interface TidingsModuleOptions extends TidingsOptions<any> {
  /**
   * Options merged under each `forFeature` declaration (a declaration's own options win; nested objects are not merged).
   * Subscriptions are left out: they name a topic's own readers, so each declaration lists its own.
   */
  topicDefaults?: Omit<TopicOptions, 'semantic' | 'scope' | 'subscriptions'>;
  /**
   * How long shutdown waits for handlers in flight, in ms (default 30,000): `ctx.signal` is aborted first, and a
   * handler still running after it is abandoned (its message is redelivered once its lease expires).
   */
  shutdownGraceMs?: number;
}

/** What `TidingsModule.forRootAsync` takes: a factory for the options and what it needs injected. */
export interface TidingsModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Providers passed to `useFactory`, in order (e.g. `MikroORM`, `ConfigService`). */
  inject?: any[];
  /** Makes the module options; may be async. */
  useFactory: (...args: any[]) => TidingsModuleOptions | Promise<TidingsModuleOptions>;
}

/**
 * One topic of `TidingsModule.forFeature`: its name and how it delivers, e.g. `{ name: 'orders', semantic:
 * 'exactly-once', ordering: 'key', subscriptions: ['billing', 'shipping'] }`. Several modules may declare one topic
 * with the same semantic and ordering; its subscriptions are then those every declaration lists (`default` for one
 * that lists none).
 */
export interface TopicDeclaration extends TopicOptions {
  /** The topic's name, e.g. `orders`. */
  name: string;
}

import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule, ModulesContainer } from '@nestjs/core';
import { Tidings, TopicConflictError, type Ordering, type Subscription, type SubscriptionOptions, type Topic, type TopicOptions } from '@tidings/core';
import { NestSetupError } from './errors.js';
import { nestLogger } from './logger.js';
import { TidingsExplorer } from './explorer.js';
import type { TidingsModuleAsyncOptions, TidingsModuleOptions, TopicDeclaration } from './options.js';
import { recordTopic, subscriptionsOf, topicDeclaration, type DeclaredTopic } from './registry.js';
import { TIDINGS, TIDINGS_MODULE_OPTIONS, getTopicDeclarationToken, getTopicToken } from './tokens.js';

async function createTidings(options: TidingsModuleOptions | undefined): Promise<Tidings<any>> {
  if (!options?.storage && !options?.container) {
    throw new NestSetupError(
      'STORAGE_MISSING',
      'TidingsModule.forRoot needs a storage adapter: pass { storage: memoryStorage() } from @tidings/adapter-memory, ' +
        '{ storage: sqliteStorage({ file }) } or, with @mikro-orm/nestjs, forRootAsync({ inject: [MikroORM], useFactory: (orm) => ({ storage: sqliteStorage({ orm }) }) }).',
    );
  }
  const { topicDefaults: _defaults, shutdownGraceMs: _grace, ...tidingsOptions } = options;
  return Tidings.create({ ...tidingsOptions, logger: options.logger ?? nestLogger() });
}

/** The modules whose imports declare `name` with forFeature, each with its declaration. */
function declarers(modules: ModulesContainer, name: string): Array<{ module: string; declaration: TopicDeclaration }> {
  const token = getTopicDeclarationToken(name);
  const found: Array<{ module: string; declaration: TopicDeclaration }> = [];
  for (const module of modules.values()) {
    for (const imported of module.imports) {
      const declaration = imported?.providers.get(token)?.instance as TopicDeclaration | undefined;
      if (declaration) found.push({ module: module.name, declaration });
    }
  }
  return found;
}

/** `exactly-once (end-to-end) ordered by key`: how a declaration delivers, for a conflict's message. */
function delivery(declaration: TopicDeclaration, defaults: TidingsModuleOptions['topicDefaults']): string {
  const semantic = declaration.semantic === 'exactly-once' ? `exactly-once (${declaration.scope ?? 'end-to-end'})` : declaration.semantic;
  const ordering = declaration.ordering ?? defaults?.ordering ?? 'none';
  return ordering === 'none' ? semantic : `${semantic} ordered by ${ordering}`;
}

/** JSON with sorted keys, so two spellings of the same options compare equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

/**
 * Merges a further declaration of a topic into the first one: the same ordering, and each subscription with the same
 * options wherever it is listed, since core keeps the options a subscription was first declared with. Returns the
 * subscriptions it adds.
 */
function mergeDeclaration(
  known: DeclaredTopic,
  ordering: Ordering,
  subscriptions: Record<string, SubscriptionOptions>,
  conflict: (message: string, sub?: string) => Error,
) {
  const { topic } = known;
  if (known.ordering !== ordering) {
    throw conflict(
      `Topic "${topic.name}" is already declared with ordering '${known.ordering}'; it cannot also be ordered by '${ordering}'. Declare it with the same ordering everywhere, or use another topic name.`,
    );
  }
  const added: Subscription<any, any>[] = [];
  for (const [name, options] of Object.entries(subscriptions)) {
    const first = known.subscriptions.get(name);
    if (first === undefined) {
      known.subscriptions.set(name, options);
      added.push(topic.subscription(name, options));
    } else if (canonical(first) !== canonical(options)) {
      throw conflict(
        `Subscription "${name}" of topic "${topic.name}" is declared with options ${canonical(first)} and ${canonical(options)}. Give it the same options in every forFeature that lists it, or list it in one module only.`,
        name,
      );
    }
  }
  return added;
}

function topicProviders(declaration: TopicDeclaration): Provider[] {
  const { name, ...declared } = declaration;
  return [
    { provide: getTopicDeclarationToken(name), useValue: declaration },
    {
      provide: getTopicToken(name),
      inject: [TIDINGS, TIDINGS_MODULE_OPTIONS, ModulesContainer],
      useFactory: async (tidings: Tidings<any>, options: TidingsModuleOptions, modules: ModulesContainer) => {
        const topicOptions: TopicOptions = { ...options.topicDefaults, ...declared };
        // A shared dead-letter topic in topicDefaults must not become the dead-letter topic of itself.
        if (declared.deadLetter === undefined && topicOptions.deadLetter === name) delete topicOptions.deadLetter;
        const subscriptions = subscriptionsOf(declared);
        const ordering = topicOptions.ordering ?? 'none';
        const where = (sub?: string) =>
          declarers(modules, name)
            .filter(({ declaration: d }) => sub === undefined || sub in subscriptionsOf(d))
            .map(({ module, declaration: d }) => `${sub === undefined ? delivery(d, options.topicDefaults) : canonical(subscriptionsOf(d)[sub])} in ${module}`);
        const conflict = (message: string, sub?: string) => {
          const found = where(sub);
          const [what, and] = sub === undefined ? [`"${name}" as`, ', and as '] : [`subscription "${sub}" of "${name}" with`, ', and with '];
          return new TopicConflictError(`${message}${found.length > 1 ? ` TidingsModule.forFeature declares ${what} ${found.join(and)}.` : ''}`);
        };
        const traced = (error: unknown) => (error instanceof TopicConflictError ? conflict(error.message) : error);
        let topic: Topic<any, any>;
        try {
          topic = tidings.topic(name, topicOptions);
        } catch (error) {
          throw traced(error);
        }
        const known = topicDeclaration(tidings, name);
        // Recorded before anything is awaited, so a declaration in another module compares against this one.
        if (!known) recordTopic(tidings, { topic, ordering, subscriptions: new Map(Object.entries(subscriptions)) });
        const added = known ? mergeDeclaration(known, ordering, subscriptions, conflict) : [];
        try {
          // A topic storage records with another semantic or ordering (another process declared it) fails the start-up.
          await topic.ready();
          await Promise.all(added.map((s) => s.ready()));
        } catch (error) {
          throw traced(error);
        }
        return topic;
      },
    },
  ];
}

/**
 * Closes the instance and runs the explorer's shutdown hooks. Kept out of the global TidingsModule on purpose:
 * Nest runs the shutdown hooks of global modules last, so these run before a global MikroOrmModule closes
 * the ORM the storage may share, whichever order the application imports the two in.
 */
@Module({ imports: [DiscoveryModule], providers: [TidingsExplorer] })
class TidingsLifecycleModule {}

/** Tidings in a Nest application: `forRoot` once for the instance, `forFeature` per module for its topics. */
@Module({})
export class TidingsModule {
  /** Creates the application's `Tidings` instance (global: inject it by class or with `@InjectTidings()`). */
  static forRoot(options: TidingsModuleOptions): DynamicModule {
    // A factory rather than useValue: Nest 10 hashes a dynamic module's metadata, and would walk the whole storage adapter.
    return TidingsModule.root([{ provide: TIDINGS_MODULE_OPTIONS, useFactory: () => options }], []);
  }

  /** Like `forRoot`, with options made by a factory, e.g. from the application's `MikroORM`. */
  static forRootAsync(options: TidingsModuleAsyncOptions): DynamicModule {
    return TidingsModule.root([{ provide: TIDINGS_MODULE_OPTIONS, inject: options.inject ?? [], useFactory: options.useFactory }], options.imports ?? []);
  }

  /** Declares topics for the importing module; each is injectable with `@InjectTopic(name)`. */
  static forFeature(topics: TopicDeclaration[]): DynamicModule {
    const providers = topics.flatMap(topicProviders);
    return { module: TidingsModule, providers, exports: topics.map((t) => getTopicToken(t.name)) };
  }

  private static root(optionsProviders: Provider[], imports: NonNullable<DynamicModule['imports']>): DynamicModule {
    return {
      global: true,
      module: TidingsModule,
      imports: [...imports, TidingsLifecycleModule],
      providers: [
        ...optionsProviders,
        { provide: TIDINGS, inject: [TIDINGS_MODULE_OPTIONS], useFactory: createTidings },
        { provide: Tidings, useExisting: TIDINGS },
      ],
      exports: [TIDINGS, Tidings, TIDINGS_MODULE_OPTIONS],
    };
  }
}

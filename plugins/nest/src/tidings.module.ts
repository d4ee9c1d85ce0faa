import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule, ModulesContainer } from '@nestjs/core';
import { Tidings, TopicConflictError, type TopicOptions } from '@tidings/core';
import { NestSetupError } from './errors.js';
import { nestLogger } from './logger.js';
import { TidingsExplorer } from './explorer.js';
import type { TidingsModuleAsyncOptions, TidingsModuleOptions, TopicDeclaration } from './options.js';
import { recordTopic } from './registry.js';
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

/** The modules whose imports declare `name` with forFeature, with the lifecycle each asked for. */
function declarers(modules: ModulesContainer, name: string): string[] {
  const token = getTopicDeclarationToken(name);
  const found: string[] = [];
  for (const module of modules.values()) {
    for (const imported of module.imports) {
      const declaration = imported?.providers.get(token)?.instance as TopicDeclaration | undefined;
      if (!declaration) continue;
      const semantic = declaration.semantic === 'exactly-once' ? `exactly-once (${declaration.scope ?? 'end-to-end'})` : declaration.semantic;
      found.push(`${semantic} in ${module.name}`);
    }
  }
  return found;
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
        try {
          const topic = tidings.topic(name, topicOptions);
          // A topic storage records with another semantic (another process declared it) fails the start-up.
          await topic.ready();
          recordTopic(tidings, topic);
          return topic;
        } catch (error) {
          if (!(error instanceof TopicConflictError)) throw error;
          const where = declarers(modules, name);
          throw new TopicConflictError(
            `${error.message}${where.length > 1 ? ` TidingsModule.forFeature declares "${name}" as ${where.join(', and as ')}.` : ''}`,
          );
        }
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
    return TidingsModule.root(
      [{ provide: TIDINGS_MODULE_OPTIONS, inject: options.inject ?? [], useFactory: options.useFactory }],
      options.imports ?? [],
    );
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

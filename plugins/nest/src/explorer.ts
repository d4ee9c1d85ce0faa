import {
  Inject,
  Injectable,
  Logger,
  type Type,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import {
  DEFAULT_SUBSCRIPTION,
  InvalidOptionsError,
  type Consumer,
  type BatchHandler,
  type Handler,
  type Subscription,
  type Tidings,
  type TidingsEvents,
  type ConsumeOptions,
} from '@tidings/core';
import { CONSUMER_METADATA, ON_MESSAGE_METADATA, ON_TIDINGS_EVENT_METADATA, type ConsumerMetadata, type OnTidingsEventMetadata } from './decorators.js';
import { NestSetupError } from './errors.js';
import { declaredSubscription, declaredTopicNames, topicDeclaration } from './registry.js';
import type { TidingsModuleOptions } from './options.js';
import { TIDINGS, TIDINGS_MODULE_OPTIONS } from './tokens.js';

type Wrapper = ReturnType<DiscoveryService['getProviders']>[number];

/** A consumer found on a provider, ready to start. */
interface PlannedConsumer {
  /** `OrdersConsumer` or `OrdersService.onOrder`, for messages. */
  label: string;
  subscription: Subscription<any, any>;
  handler: Handler<any, any> | BatchHandler<any, any>;
  batch: boolean;
  options: ConsumeOptions;
}

/** What one provider class carries: a `@Consumer`, `@OnMessage` methods, `@OnTidingsEvent` methods. */
interface Decorated {
  consumer?: ConsumerMetadata;
  onMessage: Array<[method: string, ConsumerMetadata]>;
  onEvent: Array<[method: string, OnTidingsEventMetadata]>;
}

function classOf(wrapper: Wrapper): Type | undefined {
  // A `useValue` provider has no metatype and a `useFactory` one has the factory as metatype: the class is the instance's.
  const type = !wrapper.metatype || wrapper.inject ? wrapper.instance?.constructor : wrapper.metatype;
  return typeof type === 'function' ? type : undefined;
}

function hostName(wrapper: Wrapper): string {
  return wrapper.host?.name ?? 'its module';
}

/** `@Consumer('orders', { subscription: 'billing' })`, as the decorator was written, for messages. */
function decorator(name: string, { topic, subscription }: ConsumerMetadata): string {
  return subscription === DEFAULT_SUBSCRIPTION ? `@${name}('${topic}')` : `@${name}('${topic}', { subscription: '${subscription}' })`;
}

function logError(logger: Logger, what: string, error: unknown): void {
  logger.error(`${what} failed: ${error instanceof Error ? error.message : String(error)}`, error instanceof Error ? error.stack : undefined);
}

/**
 * Finds `@Consumer`, `@OnMessage` and `@OnTidingsEvent` on the application's providers, starts the consumers at
 * bootstrap and drains them at shutdown, then closes the `Tidings` instance.
 */
@Injectable()
export class TidingsExplorer implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger('Tidings');
  private planned: PlannedConsumer[] = [];
  private readonly running: Consumer<any, any>[] = [];
  private readonly listeners: Array<[keyof TidingsEvents, (...args: any[]) => void]> = [];

  constructor(
    @Inject(TIDINGS) private readonly tidings: Tidings<any>,
    @Inject(DiscoveryService) private readonly discovery: DiscoveryService,
    @Inject(MetadataScanner) private readonly scanner: MetadataScanner,
    @Inject(TIDINGS_MODULE_OPTIONS) private readonly options: TidingsModuleOptions,
  ) {}

  /** Checks every decorated class and subscribes event methods; every provider exists by now, no consumer runs yet. */
  async onModuleInit(): Promise<void> {
    try {
      this.explore();
    } catch (error) {
      await this.abandon();
      throw error;
    }
  }

  private explore(): void {
    for (const wrapper of this.discovery.getControllers()) {
      const type = classOf(wrapper);
      if (type && this.decorationsOf(type)) {
        throw new NestSetupError(
          'NOT_A_PROVIDER',
          `${type.name} uses Tidings decorators but is registered in ${hostName(wrapper)}'s controllers; consumers and event methods run on providers: move ${type.name} to the module's providers.`,
        );
      }
    }
    const planned: PlannedConsumer[] = [];
    const listeners: typeof this.listeners = [];
    for (const wrapper of this.discovery.getProviders()) {
      const type = classOf(wrapper);
      const found = type && this.decorationsOf(type);
      if (!type || !found) continue;
      if (!wrapper.isDependencyTreeStatic() || wrapper.isTransient) {
        throw new NestSetupError(
          'SCOPED_PROVIDER',
          `${type.name} uses Tidings decorators but is request-scoped or transient (or depends on such a provider), so there is no single instance to deliver to. Make it a default-scope provider.`,
        );
      }
      const instance = wrapper.instance as Record<string, any>;
      if (found.consumer) {
        const subscription = this.subscriptionFor(found.consumer, `${decorator('Consumer', found.consumer)} on ${type.name}`, wrapper);
        if (typeof instance.handle !== 'function') {
          throw new NestSetupError(
            'HANDLE_MISSING',
            `${type.name} is a @Consumer('${found.consumer.topic}') but has no handle(message, ctx) method: add one (return to ack, throw to nack), or put @OnMessage('${found.consumer.topic}') on the method that handles messages.`,
          );
        }
        planned.push({
          label: type.name,
          subscription,
          handler: (m: any, ctx: any) => instance.handle(m, ctx),
          batch: found.consumer.batch,
          options: found.consumer.options,
        });
      }
      for (const [method, meta] of found.onMessage) {
        const label = `${type.name}.${method}`;
        const subscription = this.subscriptionFor(meta, `${decorator('OnMessage', meta)} on ${label}`, wrapper);
        planned.push({ label, subscription, handler: (m: any, ctx: any) => instance[method](m, ctx), batch: meta.batch, options: meta.options });
      }
      for (const [method, meta] of found.onEvent) {
        const label = `${type.name}.${method}`;
        // A throwing listener would unwind into the Tidings code that emitted the event; it is logged instead.
        const listener = (event: unknown) => {
          try {
            const result = instance[method](event);
            if (result instanceof Promise) result.catch((error: unknown) => logError(this.logger, `@OnTidingsEvent('${meta.event}') ${label}`, error));
          } catch (error) {
            logError(this.logger, `@OnTidingsEvent('${meta.event}') ${label}`, error);
          }
        };
        listeners.push([meta.event, listener]);
      }
    }
    this.planned = planned;
    for (const [event, listener] of listeners) {
      this.tidings.events.on(event, listener);
      this.listeners.push([event, listener]);
    }
  }

  /** Starts every consumer; if one cannot start, those already started are drained and the instance is closed. */
  async onApplicationBootstrap(): Promise<void> {
    for (const plan of this.planned) {
      try {
        this.running.push(
          plan.batch
            ? plan.subscription.consumeBatch(plan.handler as BatchHandler<any, any>, plan.options)
            : plan.subscription.consume(plan.handler as Handler<any, any>, plan.options),
        );
      } catch (error) {
        await this.abandon();
        const { topic, name } = plan.subscription;
        const where = name === DEFAULT_SUBSCRIPTION ? `topic "${topic}"` : `topic "${topic}", subscription "${name}"`;
        if (error instanceof InvalidOptionsError) throw new InvalidOptionsError(`${plan.label} (${where}): ${error.message}`);
        throw error;
      }
    }
  }

  /** Drains the consumers while every other provider (and the application's database) is still up. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.stopConsumers();
  }

  /** Closes the instance once the HTTP server and microservices are closed, so sends still in flight were stored. */
  async onApplicationShutdown(): Promise<void> {
    await this.stopConsumers();
    try {
      await this.tidings.close({ graceMs: this.options.shutdownGraceMs });
    } finally {
      for (const [event, listener] of this.listeners.splice(0)) this.tidings.events.off(event, listener);
    }
  }

  /** Nest runs no shutdown hook after a failed start, so the instance is closed here, or its connections keep the process alive. */
  private async abandon(): Promise<void> {
    await this.onApplicationShutdown().catch((error: unknown) => logError(this.logger, 'Closing Tidings after a failed start', error));
  }

  private async stopConsumers(): Promise<void> {
    const running = this.running.splice(0);
    const results = await Promise.allSettled(running.map((c) => c.stop({ graceMs: this.options.shutdownGraceMs })));
    for (const r of results) if (r.status === 'rejected') logError(this.logger, 'Stopping a consumer', r.reason);
  }

  /** The declared subscription a consumer reads; `TOPIC_NOT_DECLARED` or `SUBSCRIPTION_NOT_DECLARED` if it is not. */
  private subscriptionFor({ topic: name, subscription }: ConsumerMetadata, what: string, wrapper: Wrapper): Subscription<any, any> {
    const declared = topicDeclaration(this.tidings, name);
    if (declared) {
      const where = `in TidingsModule.forFeature([{ name: '${name}', subscriptions: [...] }])`;
      return declaredSubscription(declared.topic, [...declared.subscriptions.keys()], subscription, what, where);
    }
    const known = declaredTopicNames(this.tidings);
    throw new NestSetupError(
      'TOPIC_NOT_DECLARED',
      `${what}: topic "${name}" is not declared. Add TidingsModule.forFeature([{ name: '${name}', semantic: ... }]) to the imports of ${hostName(wrapper)}` +
        (known.length > 0 ? ` (declared topics: ${known.join(', ')}).` : ' (no topic is declared yet).'),
    );
  }

  private decorationsOf(type: Type): Decorated | undefined {
    const consumer: ConsumerMetadata | undefined = Reflect.getMetadata(CONSUMER_METADATA, type);
    const onMessage: Decorated['onMessage'] = [];
    const onEvent: Decorated['onEvent'] = [];
    const prototype = type.prototype as Record<string, unknown>;
    for (const method of this.scanner.getAllMethodNames(prototype)) {
      const fn = prototype[method];
      if (typeof fn !== 'function') continue;
      for (const meta of (Reflect.getMetadata(ON_MESSAGE_METADATA, fn) ?? []) as ConsumerMetadata[]) onMessage.push([method, meta]);
      for (const meta of (Reflect.getMetadata(ON_TIDINGS_EVENT_METADATA, fn) ?? []) as OnTidingsEventMetadata[]) onEvent.push([method, meta]);
    }
    return consumer || onMessage.length > 0 || onEvent.length > 0 ? { consumer, onMessage, onEvent } : undefined;
  }
}

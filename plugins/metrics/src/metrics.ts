import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import {
  Tokens,
  lifecycleTables,
  systemClock,
  type BatchHandleContext,
  type Clock,
  type HandleContext,
  type Lifecycle,
  type PluginHost,
  type Tidings,
  type TidingsEvents,
  type TidingsPlugin,
} from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { MetricsPluginReusedError } from './errors.js';

/** Options of `metricsPlugin`. */
export interface MetricsOptions {
  /** Where the metrics are registered (default: a registry of their own, `plugin.registry`). */
  registry?: Registry;
  /** Prepended to every metric name (default `tidings_`). */
  prefix?: string;
  /**
   * Storage whose counts the per-state gauge reads when no Tidings instance sets the plugin up (a process that only
   * watches a database other processes use, such as `tidings dashboard --db`).
   */
  storage?: StorageAdapter<any>;
  /** Upper bounds of the histograms' buckets, in seconds. */
  buckets?: { handler?: number[]; latency?: number[] };
}

/**
 * The metrics `metricsPlugin` keeps, by role; the dashboard reads them as a scraper would. `subscription` is the
 * subscription whose copy of a message it was, and empty for what happens once per topic: the producer's side
 * (STORE, ACK) and the broker's dedup.
 */
export interface TidingsMetrics {
  /** Counter `<prefix>messages_total{topic,subscription,semantic,from,to,event}`: one per lifecycle transition. */
  readonly transitions: Counter<'topic' | 'subscription' | 'semantic' | 'from' | 'to' | 'event'>;
  /** Gauge `<prefix>messages{topic,subscription,semantic,state}`: copies per state, read from `storage.counts()` at scrape time. */
  readonly messages: Gauge<'topic' | 'subscription' | 'semantic' | 'state'>;
  /** Histogram `<prefix>handler_duration_seconds{topic,subscription,semantic,outcome}`: how long handlers ran, a batch handler's run once. */
  readonly handlerDuration: Histogram<'topic' | 'subscription' | 'semantic' | 'outcome'>;
  /** Histogram `<prefix>end_to_end_latency_seconds{topic,subscription,semantic}`: from the message's store to its handler's start. */
  readonly endToEndLatency: Histogram<'topic' | 'subscription' | 'semantic'>;
  /** Counter `<prefix>dead_letters_total{topic,subscription}`. */
  readonly deadLetters: Counter<'topic' | 'subscription'>;
  /** Counter `<prefix>redeliveries_total{topic,subscription,reason}`: reason `lease_expired` or `nack`. */
  readonly redeliveries: Counter<'topic' | 'subscription' | 'reason'>;
  /** Counter `<prefix>duplicates_total{topic,subscription,by}`: by `broker` (dedup window) or `consumer` (idempotency store). */
  readonly duplicates: Counter<'topic' | 'subscription' | 'by'>;
  /** Counter `<prefix>handler_errors_total{topic,subscription}`. */
  readonly handlerErrors: Counter<'topic' | 'subscription'>;
  /** Gauge `<prefix>subscription_paused{topic,subscription}`: 1 while an operator has it paused, read from storage at scrape time. */
  readonly paused: Gauge<'topic' | 'subscription'>;
  /** Gauge `<prefix>wake_ups_live`: 1 while consumers are woken when another process stores, 0 while that is being re-established (they poll meanwhile); absent without wake-ups. */
  readonly wakeUpsLive: Gauge;
  /** Counter `<prefix>operator_actions_total{topic,subscription,action}`: pauses, resumes, empties, discards, retries now and redrives made from this process. */
  readonly operatorActions: Counter<'topic' | 'subscription' | 'action'>;
}

/** A Tidings plugin that counts what happens to messages, plus the Prometheus registry to scrape. */
export interface MetricsPlugin extends TidingsPlugin {
  readonly name: 'metrics';
  /** Scrape it with `await registry.metrics()` (content type `registry.contentType`). */
  readonly registry: Registry;
  /** The metric name prefix in use. */
  readonly prefix: string;
  /** The metrics themselves. */
  readonly metrics: TidingsMetrics;
  /** Subscribes to the instance's events and reads its storage at scrape time; one instance per plugin. */
  setup(tidings: PluginHost): void;
  /** Times the handler and the message's wait since it was stored. */
  handle(ctx: HandleContext, next: () => Promise<void>): Promise<void>;
  /** Times the batch handler's run once, and each message's wait since it was stored. */
  handleBatch(ctx: BatchHandleContext, next: () => Promise<void>): Promise<void>;
  /** Unsubscribes; the per-state gauge stops reading the closed storage. */
  close(): void;
}

/** Latency from store to handler: milliseconds on a busy topic up to minutes behind a backlog or a backoff. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const HANDLER_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Prometheus metrics for one Tidings instance: pass it to `Tidings.create({ plugins })`, serve `registry.metrics()`. */
export function metricsPlugin(options: MetricsOptions = {}): MetricsPlugin {
  const registry = options.registry ?? new Registry();
  const prefix = options.prefix ?? 'tidings_';
  let tidings: PluginHost | undefined;
  let storage = options.storage;
  let clock: Clock = systemClock;
  let unsubscribe: (() => void) | undefined;
  const lifecycles = new Map<string, Lifecycle>();
  const semanticOf = (topic: string) => lifecycles.get(topic) ?? 'unknown';

  const registers = [registry];
  const metrics: TidingsMetrics = {
    transitions: new Counter({
      name: `${prefix}messages_total`,
      help: 'Lifecycle transitions of messages, by topic, subscription (empty on the producer side), semantic (lifecycle), from state, to state and event.',
      labelNames: ['topic', 'subscription', 'semantic', 'from', 'to', 'event'],
      registers,
    }),
    messages: new Gauge({
      name: `${prefix}messages`,
      help: 'Message copies in storage per topic, subscription and state, read from storage counts when scraped.',
      labelNames: ['topic', 'subscription', 'semantic', 'state'],
      registers,
      // One aggregate query per scrape: a gauge kept up to date from events would miss other processes' messages.
      async collect() {
        this.reset();
        if (!storage) return;
        const [counts, records, subscriptions] = await Promise.all([storage.counts(), storage.topics(), storage.subscriptions()]);
        for (const r of records) lifecycles.set(r.name, r.lifecycle);
        // Every recorded subscription, so one that holds nothing yet is a row of zeros rather than no row.
        const byTopic = new Map<string, Set<string>>();
        const add = (topic: string, subscription: string) => {
          let names = byTopic.get(topic);
          if (!names) byTopic.set(topic, (names = new Set()));
          names.add(subscription);
        };
        for (const s of subscriptions) add(s.topic, s.name);
        for (const [topic, copies] of Object.entries(counts)) for (const subscription of Object.keys(copies)) add(topic, subscription);
        for (const [topic, names] of byTopic) {
          const lifecycle = lifecycles.get(topic);
          for (const subscription of names) {
            const c: Partial<Record<string, number>> = counts[topic]?.[subscription] ?? {};
            const states = lifecycle ? lifecycleTables[lifecycle].states : Object.keys(c);
            for (const state of states) this.set({ topic, subscription, semantic: semanticOf(topic), state }, c[state] ?? 0);
          }
        }
      },
    }),
    handlerDuration: new Histogram({
      name: `${prefix}handler_duration_seconds`,
      help: 'How long message handlers ran, a batch handler once per batch, by outcome (ok: returned, partial: a batch handler returned having marked messages failed, error: threw).',
      labelNames: ['topic', 'subscription', 'semantic', 'outcome'],
      buckets: options.buckets?.handler ?? HANDLER_BUCKETS,
      registers,
    }),
    endToEndLatency: new Histogram({
      name: `${prefix}end_to_end_latency_seconds`,
      help: 'Time from a message being stored to its handler starting, each delivery counted (each message of a batch).',
      labelNames: ['topic', 'subscription', 'semantic'],
      buckets: options.buckets?.latency ?? LATENCY_BUCKETS,
      registers,
    }),
    deadLetters: new Counter({
      name: `${prefix}dead_letters_total`,
      help: "Subscriptions' copies of messages dead-lettered after using up their deliveries.",
      labelNames: ['topic', 'subscription'],
      registers,
    }),
    redeliveries: new Counter({
      name: `${prefix}redeliveries_total`,
      help: 'Messages put back for another delivery, because their lease expired or their handler threw.',
      labelNames: ['topic', 'subscription', 'reason'],
      registers,
    }),
    duplicates: new Counter({
      name: `${prefix}duplicates_total`,
      help: 'Duplicates dropped, by the broker (dedup window) or the consumer (idempotency store).',
      labelNames: ['topic', 'subscription', 'by'],
      registers,
    }),
    handlerErrors: new Counter({ name: `${prefix}handler_errors_total`, help: 'Handlers that threw.', labelNames: ['topic', 'subscription'], registers }),
    paused: new Gauge({
      name: `${prefix}subscription_paused`,
      help: 'Whether an operator has the subscription paused (1) or not (0), in every process; read from storage when scraped.',
      labelNames: ['topic', 'subscription'],
      registers,
      async collect() {
        this.reset();
        if (!storage) return;
        for (const s of await storage.subscriptions()) this.set({ topic: s.topic, subscription: s.name }, s.pausedAt === undefined ? 0 : 1);
      },
    }),
    wakeUpsLive: new Gauge({
      name: `${prefix}wake_ups_live`,
      help: 'Whether consumers are woken when another process stores (PostgreSQL LISTEN, the SQLite WAL watch): 1 live, 0 being re-established (consumers poll meanwhile).',
      registers,
      collect() {
        this.reset();
        const wakeUps = storage?.health?.().wakeUps;
        if (wakeUps) this.set(wakeUps.state === 'live' ? 1 : 0);
      },
    }),
    operatorActions: new Counter({
      name: `${prefix}operator_actions_total`,
      help: "An operator's acts on a subscription made from this process, by action (pause, resume, empty, discard, retryNow, redrive).",
      labelNames: ['topic', 'subscription', 'action'],
      registers,
    }),
  };

  const listeners: { [K in keyof TidingsEvents]?: TidingsEvents[K] } = {
    transition: (e) => {
      lifecycles.set(e.topic, e.lifecycle);
      const subscription = e.subscription ?? '';
      metrics.transitions.inc({ topic: e.topic, subscription, semantic: e.lifecycle, from: e.from, to: e.to, event: e.event });
      // A redelivery is a lease going back to wait; the same events with deliveries used up are DEAD transitions.
      if (e.event === 'EXPIRE') metrics.redeliveries.inc({ topic: e.topic, subscription, reason: 'lease_expired' });
      if (e.event === 'NACK') metrics.redeliveries.inc({ topic: e.topic, subscription, reason: 'nack' });
    },
    duplicate: (e) => metrics.duplicates.inc({ topic: e.topic, subscription: e.subscription ?? '', by: e.by }),
    deadLetter: (e) => metrics.deadLetters.inc({ topic: e.topic, subscription: e.subscription ?? '' }),
    handlerError: (e) => metrics.handlerErrors.inc({ topic: e.topic, subscription: e.subscription ?? '' }),
    operator: (e) => metrics.operatorActions.inc({ topic: e.topic, subscription: e.subscription, action: e.action }),
  };

  /** Runs a handler, observing its duration by outcome; `returned` names a run that did not throw. */
  async function timed(labels: { topic: string; subscription: string; semantic: string }, next: () => Promise<void>, returned = () => 'ok'): Promise<void> {
    const stop = metrics.handlerDuration.startTimer(labels);
    try {
      await next();
      stop({ outcome: returned() });
    } catch (error) {
      stop({ outcome: 'error' });
      throw error;
    }
  }

  return {
    name: 'metrics',
    registry,
    prefix,
    metrics,
    setup(instance) {
      if (tidings && tidings !== instance) throw new MetricsPluginReusedError();
      if (tidings) return;
      tidings = instance;
      storage = instance.storage;
      // A Tidings instance stamps createdAt with its own clock (a fake one in tests): measure latency on the same one.
      const container = (instance as Partial<Pick<Tidings<any>, 'container'>>).container;
      if (container?.isRegistered(Tokens.Clock, true)) clock = container.resolve(Tokens.Clock);
      const events = instance.events;
      for (const [name, listener] of Object.entries(listeners)) events.on(name as keyof TidingsEvents, listener as never);
      unsubscribe = () => {
        for (const [name, listener] of Object.entries(listeners)) events.off(name as keyof TidingsEvents, listener as never);
      };
    },
    handle(ctx, next) {
      const labels = { topic: ctx.topic, subscription: ctx.subscription, semantic: ctx.lifecycle };
      metrics.endToEndLatency.observe(labels, Math.max(0, clock.now() - ctx.message.createdAt) / 1000);
      return timed(labels, next);
    },
    handleBatch(ctx, next) {
      const labels = { topic: ctx.topic, subscription: ctx.subscription, semantic: ctx.lifecycle };
      const now = clock.now();
      for (const message of ctx.messages) metrics.endToEndLatency.observe(labels, Math.max(0, now - message.createdAt) / 1000);
      return timed(labels, next, () => (ctx.failed.size > 0 ? 'partial' : 'ok'));
    },
    close() {
      unsubscribe?.();
      unsubscribe = undefined;
      storage = undefined;
    },
  };
}

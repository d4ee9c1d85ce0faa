import type { Lifecycle, MessageState, Tidings, TransitionEvent } from '@tidings/core';
import {
  lifecyclePlans,
  recordedLedger,
  topicTotals,
  type LifecyclePlan,
  type StorageAdapter,
  type StoredMessage,
  type TopicRecord,
} from '@tidings/core/adapter';
import type { MetricsPlugin } from '@tidings/metrics';

/** How many seconds of history the charts keep. */
export const HISTORY_SECONDS = 300;
/** Rows of dead letters, leases and transitions shown per subscription (and per topic). */
export const LIST_LIMIT = 20;
/** Latency quantiles are taken over this many seconds of deliveries, so one quiet second does not blank the line. */
const LATENCY_WINDOW_SECONDS = 10;
/** Rates in and out are averaged over this many seconds, so that a batch does not read as a burst and a silence. */
const RATE_WINDOW_SECONDS = 10;

/** Where the figures come from: this process's events and hooks, or counts of a database other processes use. */
export type MonitorMode = 'in-process' | 'standalone';

/** A dead letter as the page lists it: one subscription's copy. */
export interface DeadLetterRow {
  id: string;
  subscription: string;
  deliveries: number;
  createdAt: number;
  lastError?: string;
}

/** A lease in flight: whose copy (its subscription), who holds it (its token) and until when. */
export interface LeaseRow {
  id: string;
  subscription: string;
  leaseToken?: string;
  leaseUntil?: number;
  deliveries: number;
}

/** One point a second: `sent` and `delivered` per second (in-process) or the net change of waiting messages (standalone); latency in seconds. */
export interface SeriesPoint {
  at: number;
  sent?: number;
  delivered?: number;
  net?: number;
  waiting: number;
  inFlight: number;
  p50?: number;
  p95?: number;
}

/** What the page shows of one subscription of a topic: its copies on the machine, its dead letters and its leases. */
export interface SubscriptionView {
  name: string;
  /** Its delivery limit and dead-letter topic as recorded; absent for copies without a record. */
  maxDeliveries?: number;
  deadLetter?: string;
  /** Its copies per state, from the same aggregate `storage.counts()`. */
  counts: Partial<Record<MessageState, number>>;
  deadLetters: DeadLetterRow[];
  leases: LeaseRow[];
  /** Since when it is paused (epoch ms); absent while its consumers lease. */
  pausedAt?: number;
  /** Since when its oldest waiting message is due (epoch ms): the first of a `waiting` browse. */
  oldestWaitingAt?: number;
  /** Messages per second copied to it and leaving it (consumed or dead), over the last seconds; see `Snapshot.rates`. */
  rateIn?: number;
  rateOut?: number;
}

/** What the page shows of one topic; `counts`, `deadLetters` and `leases` take all its subscriptions together. */
export interface TopicView {
  name: string;
  lifecycle?: Lifecycle;
  /** How its subscriptions hand out keyed messages (`none`, `key`, `key-strict`); absent when the topic is not recorded. */
  ordering?: string;
  deadLetter?: string;
  /** The topics whose dead letters are copied here, when this is a dead-letter topic. */
  deadLetterOf?: string[];
  /** Copies per state over every subscription, from one aggregate `storage.counts()`. */
  counts: Partial<Record<MessageState, number>>;
  ready?: MessageState;
  leased?: MessageState;
  redrivable: boolean;
  /** Every subscription storage records for it, or that holds copies of its messages, by name. */
  subscriptions: SubscriptionView[];
  deadLetters: DeadLetterRow[];
  leases: LeaseRow[];
  transitions: Array<Pick<TransitionEvent, 'id' | 'subscription' | 'from' | 'to' | 'event' | 'at'>>;
  series: SeriesPoint[];
}

/** Everything the page shows, sent once a second over server-sent events. */
export interface Snapshot {
  mode: MonitorMode;
  at: number;
  /** Whether end-to-end latency is measured (the metrics plugin's handle hook runs in this process). */
  latency: boolean;
  /** Where rates in and out come from: this process's transition events, or the change of counts between samples. */
  rates: 'events' | 'counts';
  /** How long the sample took to read from storage, in ms. */
  tookMs?: number;
  topics: TopicView[];
  error?: string;
}

/** A sample may take at most this share of the time between samples (1 in 10). */
const SAMPLE_SHARE = 10;

/** Cumulative copies in and out of one subscription at one sample, from which its rates are taken. */
interface FlowSample {
  at: number;
  in: number;
  out: number;
}

interface TopicHistory {
  series: SeriesPoint[];
  transitions: TopicView['transitions'];
  lastTotals?: { sent: number; delivered: number; waiting: number; inFlight: number };
  buckets: Array<Map<number, number>>;
}

/**
 * Samples storage and the metrics once a second, for as long as the dashboard is open, so the charts have the last
 * minutes when a page opens. Counts come from one aggregate query; only dead letters and leases (a page of each,
 * for topics that have some) are read as messages.
 */
export class Monitor {
  private readonly history = new Map<string, TopicHistory>();
  private readonly listeners = new Set<(snapshot: Snapshot) => void>();
  private timer?: NodeJS.Timeout;
  private running = false;
  private ticking?: Promise<void>;
  private last?: Snapshot;
  private readonly unsubscribe?: () => void;
  /** Copies stored per topic and settled per subscription, as this process's events told. */
  private readonly stored = new Map<string, number>();
  private readonly settled = new Map<string, number>();
  private readonly flows = new Map<string, FlowSample[]>();

  constructor(private readonly source: { tidings?: Tidings<any>; storage: StorageAdapter<any>; metrics: MetricsPlugin; now: () => number; hooked: boolean }) {
    const events = source.tidings?.events;
    if (events) {
      const onTransition = (e: TransitionEvent) => {
        const list = this.topic(e.topic).transitions;
        list.unshift({ id: e.id, subscription: e.subscription, from: e.from, to: e.to, event: e.event, at: e.at });
        list.length = Math.min(list.length, LIST_LIMIT);
        if (e.event === 'STORE') this.stored.set(e.topic, (this.stored.get(e.topic) ?? 0) + 1);
        else if ((e.event === 'CONSUME' || e.event === 'DEAD') && e.subscription !== undefined) {
          const key = flowKey(e.topic, e.subscription);
          this.settled.set(key, (this.settled.get(key) ?? 0) + 1);
        }
      };
      events.on('transition', onTransition);
      this.unsubscribe = () => events.off('transition', onTransition);
    }
  }

  /** Where the figures come from. */
  get mode(): MonitorMode {
    return this.source.tidings ? 'in-process' : 'standalone';
  }

  /**
   * Starts sampling each second, or less often when a sample is slow: the next comes `SAMPLE_SHARE` × its duration
   * later at the soonest. On SQLite a sample's counts run on the event loop (about 200 ms over 1,000,000 messages), so
   * sampling an application's database each second would stall its own consumers a fifth of the time.
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    const next = () => {
      if (!this.running) return;
      const tookMs = this.last?.tookMs ?? 0;
      this.timer = setTimeout(() => void this.tick().finally(next), Math.max(1000, tookMs * SAMPLE_SHARE));
      // The dashboard must never keep an application alive on its own.
      this.timer.unref();
    };
    void this.tick().finally(next);
  }

  /** Calls `listener` with every new snapshot; returns the unsubscribe. */
  subscribe(listener: (snapshot: Snapshot) => void): () => void {
    this.listeners.add(listener);
    if (this.last) listener(this.last);
    return () => this.listeners.delete(listener);
  }

  /** A fresh snapshot now (a redrive wants its result seen at once). */
  async refresh(): Promise<Snapshot> {
    await this.tick();
    return this.last!;
  }

  /** The latest snapshot, taking one if none was taken yet. */
  async snapshot(): Promise<Snapshot> {
    return this.last ?? this.refresh();
  }

  stop(): void {
    this.running = false;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.unsubscribe?.();
    this.listeners.clear();
  }

  private topic(name: string): TopicHistory {
    let h = this.history.get(name);
    if (!h) this.history.set(name, (h = { series: [], transitions: [], buckets: [] }));
    return h;
  }

  /** One sample; overlapping calls share the one running. */
  private tick(): Promise<void> {
    this.ticking ??= this.sample()
      .then((snapshot) => {
        this.last = snapshot;
        for (const listener of this.listeners) listener(snapshot);
      })
      .catch((error: unknown) => {
        // Storage may be briefly busy or gone; the page says so and the next second tries again.
        const snapshot: Snapshot = {
          ...(this.last ?? { mode: this.mode, latency: false, rates: this.rates, topics: [] }),
          at: this.source.now(),
          error: (error as Error)?.message ?? String(error),
        };
        this.last = snapshot;
        for (const listener of this.listeners) listener(snapshot);
      })
      .finally(() => (this.ticking = undefined));
    return this.ticking;
  }

  private get rates(): Snapshot['rates'] {
    return this.source.tidings ? 'events' : 'counts';
  }

  private async sample(): Promise<Snapshot> {
    const { storage, metrics } = this.source;
    const at = this.source.now();
    const started = performance.now();
    const [copies, records, subscriptions] = await Promise.all([storage.counts(), storage.topics(), storage.subscriptions()]);
    const counts = topicTotals(copies);
    const inProcess = this.source.tidings !== undefined;
    const totals = inProcess ? await this.transitionTotals(metrics) : undefined;
    const latencies = inProcess ? await this.latencyBuckets(metrics) : undefined;
    const names = [...new Set([...records.map((r) => r.name), ...Object.keys(counts).filter((t) => Object.keys(counts[t]!).length > 0)])].sort();
    const topics = await Promise.all(
      names.map(async (name): Promise<TopicView> => {
        const record = records.find((r) => r.name === name);
        const plan = record ? lifecyclePlans[record.lifecycle] : undefined;
        const c = counts[name] ?? {};
        const waiting = plan ? (c[plan.ready] ?? 0) : 0;
        const inFlight = plan ? (c[plan.leased] ?? 0) : 0;
        const recorded = subscriptions.filter((s) => s.topic === name);
        const subscriptionNames = [...new Set([...recorded.map((s) => s.name), ...Object.keys(copies[name] ?? {})])].sort();
        const views = await Promise.all(
          subscriptionNames.map(async (subscription): Promise<SubscriptionView & { oldest?: StoredMessage }> => {
            const own = copies[name]?.[subscription] ?? {};
            const peek = (state: MessageState, limit: number) => storage.peek({ topic: name, subscription, state, limit });
            const dead = plan?.dead;
            const r = recorded.find((s) => s.name === subscription);
            const [deadRows, leaseRows, oldest] = await Promise.all([
              dead && own[dead] ? peek(dead, LIST_LIMIT) : [],
              plan && own[plan.leased] ? peek(plan.leased, LIST_LIMIT) : [],
              record && plan && own[plan.ready] ? this.oldestWaiting(record, subscription, r?.maxDeliveries) : undefined,
            ]);
            const flow = this.flow(name, subscription, at, own, plan);
            return {
              name: subscription,
              maxDeliveries: r?.maxDeliveries,
              deadLetter: r?.deadLetter,
              counts: own,
              deadLetters: deadRows.map((m) => ({ id: m.id, subscription, deliveries: m.deliveries, createdAt: m.createdAt, lastError: m.lastError })),
              leases: leaseRows.map((m) => ({ id: m.id, subscription, leaseToken: m.leaseToken, leaseUntil: m.leaseUntil, deliveries: m.deliveries })),
              ...(r?.pausedAt !== undefined ? { pausedAt: r.pausedAt } : {}),
              ...(oldest ? { oldestWaitingAt: oldest.availableAt } : {}),
              ...flow,
              oldest,
            };
          }),
        );
        const h = this.topic(name);
        const point: SeriesPoint = { at, waiting, inFlight };
        const sent = totals?.get(name)?.sent ?? 0;
        const delivered = totals?.get(name)?.delivered ?? 0;
        if (h.lastTotals) {
          if (inProcess) {
            point.sent = Math.max(0, sent - h.lastTotals.sent);
            point.delivered = Math.max(0, delivered - h.lastTotals.delivered);
          } else {
            point.net = waiting + inFlight - (h.lastTotals.waiting + h.lastTotals.inFlight);
          }
        }
        h.lastTotals = { sent, delivered, waiting, inFlight };
        // Standalone, no handler is timed here: the age of the oldest waiting message stands in for latency.
        const oldest = Math.min(...views.flatMap((v) => (v.oldest ? [v.oldest.availableAt] : [])));
        if (inProcess) Object.assign(point, this.quantiles(h, latencies?.get(name)));
        else if (Number.isFinite(oldest)) point.p50 = point.p95 = Math.max(0, at - oldest) / 1000;
        h.series.push(point);
        if (h.series.length > HISTORY_SECONDS) h.series.splice(0, h.series.length - HISTORY_SECONDS);
        // The topic's lists take every subscription's rows: the dead letters oldest first, the leases due first.
        const first = <R>(rows: R[], by: (r: R) => number) => rows.sort((a, b) => by(a) - by(b)).slice(0, LIST_LIMIT);
        return {
          name,
          lifecycle: record?.lifecycle,
          ordering: record ? (record.ordering ?? 'none') : undefined,
          deadLetter: record?.deadLetter,
          ...deadLetterOf(name, records, subscriptions),
          counts: c,
          ready: plan?.ready,
          leased: plan?.leased,
          redrivable: (plan?.steps.redrive.length ?? 0) > 0,
          subscriptions: views.map(({ oldest: _, ...view }) => view),
          deadLetters: first(
            views.flatMap((v) => v.deadLetters),
            (r) => r.createdAt,
          ),
          leases: first(
            views.flatMap((v) => v.leases),
            (r) => r.leaseUntil ?? 0,
          ),
          transitions: [...h.transitions],
          series: [...h.series],
        };
      }),
    );
    return { mode: this.mode, at, latency: this.source.hooked, rates: this.rates, tookMs: Math.round((performance.now() - started) * 10) / 10, topics };
  }

  /**
   * The subscription's first waiting message in delivery order, read as a one-row page from storage's index; an
   * adapter without `browse` is asked for the first message in the ready state, due or not.
   */
  private async oldestWaiting(record: TopicRecord, subscription: string, maxDeliveries: number | undefined): Promise<StoredMessage | undefined> {
    const ledger = recordedLedger(
      this.source.storage,
      record,
      { name: subscription, maxDeliveries: maxDeliveries ?? record.maxDeliveries },
      { clock: { now: this.source.now } },
    );
    if (typeof this.source.storage.browse !== 'function') return (await ledger.peek(lifecyclePlans[record.lifecycle].ready, 1))[0];
    return (await ledger.browse({ view: 'waiting', limit: 1 })).messages[0];
  }

  /**
   * Rates in and out of a subscription over the last seconds. In-process from the transitions this process made;
   * standalone from the counts: copies in any state for in, copies past the ready and leased states for out, which
   * misses what retention purged between two samples, hence never below zero.
   */
  private flow(
    topic: string,
    subscription: string,
    at: number,
    own: Partial<Record<MessageState, number>>,
    plan: LifecyclePlan | undefined,
  ): Pick<SubscriptionView, 'rateIn' | 'rateOut'> {
    const key = flowKey(topic, subscription);
    let sample: FlowSample;
    if (this.source.tidings) sample = { at, in: this.stored.get(topic) ?? 0, out: this.settled.get(key) ?? 0 };
    else {
      const total = Object.values(own).reduce<number>((a, b) => a + (b ?? 0), 0);
      const pending = plan ? (own[plan.ready] ?? 0) + (own[plan.leased] ?? 0) : 0;
      sample = { at, in: total, out: total - pending };
    }
    const samples = this.flows.get(key) ?? [];
    samples.push(sample);
    if (samples.length > RATE_WINDOW_SECONDS + 1) samples.shift();
    this.flows.set(key, samples);
    const first = samples[0]!;
    const seconds = (sample.at - first.at) / 1000;
    if (seconds <= 0) return {};
    const rate = (n: number) => Math.round((Math.max(0, n) / seconds) * 10) / 10;
    return { rateIn: rate(sample.in - first.in), rateOut: rate(sample.out - first.out) };
  }

  /** Messages stored and copies delivered (in every subscription) so far per topic, from the metrics plugin's transition counter. */
  private async transitionTotals(metrics: MetricsPlugin): Promise<Map<string, { sent: number; delivered: number }>> {
    const totals = new Map<string, { sent: number; delivered: number }>();
    for (const v of (await metrics.metrics.transitions.get()).values) {
      const topic = String(v.labels.topic);
      const t = totals.get(topic) ?? { sent: 0, delivered: 0 };
      if (v.labels.event === 'STORE') t.sent += v.value;
      if (v.labels.event === 'CONSUME') t.delivered += v.value;
      totals.set(topic, t);
    }
    return totals;
  }

  /** Cumulative latency bucket counts per topic (upper bound in seconds to count), as Prometheus would scrape them. */
  private async latencyBuckets(metrics: MetricsPlugin): Promise<Map<string, Map<number, number>>> {
    const buckets = new Map<string, Map<number, number>>();
    for (const v of (await metrics.metrics.endToEndLatency.get()).values) {
      if (v.metricName !== `${metrics.prefix}end_to_end_latency_seconds_bucket`) continue;
      const topic = String(v.labels.topic);
      const { le: bound } = v.labels as { le?: string | number };
      const le = bound === '+Inf' ? Infinity : Number(bound);
      const b = buckets.get(topic) ?? new Map<number, number>();
      b.set(le, (b.get(le) ?? 0) + v.value);
      buckets.set(topic, b);
    }
    return buckets;
  }

  /** p50 and p95 of the deliveries of the last seconds, interpolated within buckets as `histogram_quantile` does. */
  private quantiles(h: TopicHistory, now: Map<number, number> | undefined): Pick<SeriesPoint, 'p50' | 'p95'> {
    const current = now ?? new Map<number, number>();
    h.buckets.push(current);
    if (h.buckets.length > LATENCY_WINDOW_SECONDS + 1) h.buckets.shift();
    const first = h.buckets[0]!;
    const bounds = [...current.keys()].sort((a, b) => a - b);
    const window = bounds.map((le) => ({ le, n: (current.get(le) ?? 0) - (first === current ? 0 : (first.get(le) ?? 0)) }));
    const total = window.at(-1)?.n ?? 0;
    if (total <= 0) return {};
    const q = (quantile: number) => {
      const rank = quantile * total;
      let lower = 0;
      let below = 0;
      for (const { le, n } of window) {
        if (n >= rank) return le === Infinity ? lower : lower + ((le - lower) * (rank - below)) / Math.max(1, n - below);
        lower = le;
        below = n;
      }
      return lower;
    };
    return { p50: q(0.5), p95: q(0.95) };
  }
}

function flowKey(topic: string, subscription: string): string {
  return `${topic}\u0000${subscription}`;
}

/** The topics (or their subscriptions) whose dead letters are copied to `name`, so the page can link back to them. */
function deadLetterOf(
  name: string,
  topics: readonly TopicRecord[],
  subscriptions: ReadonlyArray<{ topic: string; deadLetter?: string }>,
): Pick<TopicView, 'deadLetterOf'> {
  const sources = [
    ...new Set([...topics.filter((t) => t.deadLetter === name).map((t) => t.name), ...subscriptions.filter((s) => s.deadLetter === name).map((s) => s.topic)]),
  ].sort();
  return sources.length > 0 ? { deadLetterOf: sources } : {};
}

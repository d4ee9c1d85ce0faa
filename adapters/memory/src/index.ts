import { ClosedError, InvalidOptionsError, StorageError, type MessageState } from '@tidings/core';
import type {
  BrowsePage,
  BrowseRequest,
  DiscardRequest,
  PeekRequest,
  RetryNowRequest,
  SubscriptionCounts,
  SubscriptionRecord,
  ExpireRequest,
  ExtendLeaseRequest,
  IdempotencyStore,
  LeaseRequest,
  PurgeRequest,
  RedriveRequest,
  ReleaseRequest,
  SettleRequest,
  StorageAdapter,
  StoredMessage,
  StoreRequest,
  StoreResult,
  TopicRecord,
} from '@tidings/core/adapter';
import { MemoryIdempotencyStore } from '@tidings/idempotency';
import { SubscriptionRows, TopicRows, type Row } from './rows.js';

/** A row as callers get it: a copy, without its place in store order (field by field: V8's fast path). */
function copy(row: Row, state: MessageState = row.state): StoredMessage {
  const m: StoredMessage = {
    id: row.id,
    topic: row.topic,
    subscription: row.subscription,
    body: row.body,
    state,
    deliveries: row.deliveries,
    availableAt: row.availableAt,
    createdAt: row.createdAt,
  };
  if (row.key !== undefined) m.key = row.key;
  if (row.leaseUntil !== undefined) m.leaseUntil = row.leaseUntil;
  if (row.leaseToken !== undefined) m.leaseToken = row.leaseToken;
  if (row.lastError !== undefined) m.lastError = row.lastError;
  if (row.headers !== undefined) m.headers = row.headers;
  return m;
}

function unlease(row: Row): void {
  row.leaseUntil = undefined;
  row.leaseToken = undefined;
}

/** A memory transaction: how to undo each change it made, replayed backwards on rollback. */
export interface MemoryTransaction {
  readonly undo: Array<() => void>;
}

/** Messages in process memory: fast, and gone when the process exits. Single-process only. */
export class MemoryStorage implements StorageAdapter<MemoryTransaction> {
  readonly name = 'memory';
  private readonly rowsByTopic = new Map<string, TopicRows>();
  private readonly registry = new Map<string, TopicRecord>();
  private readonly subscriptionRegistry = new Map<string, Map<string, SubscriptionRecord>>();
  /** Store order across every topic and subscription. */
  private seq = 0;
  private readonly consumed = new MemoryIdempotencyStore();
  private closed = false;
  /** Transactions whose callback is still running: a handle outlives its transaction, and is refused after it. */
  private readonly running = new WeakSet<MemoryTransaction>();
  /** Consumed ids, recorded inside the handler's transaction so a rollback forgets them too. */
  private readonly idempotency: IdempotencyStore<MemoryTransaction> = {
    name: 'memory',
    seen: async (topic, ids, tx) => {
      this.assertRunning(tx);
      return this.consumed.seen(topic, ids);
    },
    record: async (topic, ids, expiresAt, tx) => {
      this.assertRunning(tx);
      const fresh = await this.consumed.record(topic, ids, expiresAt);
      tx?.undo.push(() => this.consumed.forget(topic, fresh));
      return fresh;
    },
    purge: (now) => this.consumed.purge(now),
  };

  /** After close every operation rejects, as the contract asks, instead of quietly serving rows. */
  private assertOpen(): void {
    if (this.closed) throw new ClosedError('This memory storage');
  }

  /** A write through a handle whose transaction has ended would land outside any transaction: refused, as a database refuses it. */
  private assertRunning(tx: MemoryTransaction | undefined): void {
    this.assertOpen();
    if (tx !== undefined && !this.running.has(tx)) throw new StorageError('This transaction handle belongs to a transaction that has ended.');
  }

  private topicRows(topic: string): TopicRows {
    this.assertOpen();
    let t = this.rowsByTopic.get(topic);
    if (!t) this.rowsByTopic.set(topic, (t = new TopicRows()));
    return t;
  }

  private rows(topic: string, subscription: string): SubscriptionRows {
    return this.topicRows(topic).subscription(subscription);
  }

  async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    this.assertRunning(tx);
    const t = this.topicRows(req.topic);
    const subscriptions = [...(this.subscriptionRegistry.get(req.topic)?.keys() ?? [])].map((name) => t.subscription(name));
    const inBatch = new Set<string>();
    return req.messages.map((m) => {
      const held =
        inBatch.has(m.id) || (t.dedup.get(m.id) ?? -Infinity) > req.now || (subscriptions.length > 0 && subscriptions.every((s) => s.byId.has(m.id)));
      inBatch.add(m.id);
      if (held) return { id: m.id, duplicate: true };
      const seq = ++this.seq;
      for (const rows of subscriptions) {
        if (rows.byId.has(m.id)) continue;
        const row: Row = {
          id: m.id,
          topic: req.topic,
          subscription: rows.name,
          body: m.body,
          state: req.state,
          deliveries: 0,
          availableAt: m.availableAt,
          createdAt: req.now,
          seq,
        };
        if (m.key !== undefined) row.key = m.key;
        if (m.lastError !== undefined) row.lastError = m.lastError;
        if (m.headers !== undefined) row.headers = m.headers;
        rows.insert(row);
        tx?.undo.push(() => rows.remove(row));
      }
      if (req.dedupUntil !== undefined) {
        const before = t.dedup.get(m.id);
        t.dedup.set(m.id, req.dedupUntil);
        tx?.undo.push(() => (before === undefined ? t.dedup.delete(m.id) : t.dedup.set(m.id, before)));
      }
      return { id: m.id, duplicate: false };
    });
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const t = this.rows(req.topic, req.subscription);
    const out: StoredMessage[] = [];
    const taken = new Set<string>();
    // Live: a row moved out of the bucket while it is walked is not seen again (Map iteration allows it).
    for (const row of t.bucket(req.from).values()) {
      if (out.length >= req.limit) break;
      if (row.availableAt > req.now) continue;
      if (req.keyHeldIn && row.key !== undefined && (taken.has(row.key) || t.keyHeld(row, req.keyHeldIn))) continue;
      if (row.key !== undefined) taken.add(row.key);
      row.deliveries++;
      row.leaseUntil = req.leaseUntil;
      row.leaseToken = req.leaseToken;
      if (req.remove) t.remove(row);
      else t.move(row, req.to);
      out.push(copy(row, req.to));
    }
    return out;
  }

  async extendLease(req: ExtendLeaseRequest, tx?: MemoryTransaction): Promise<boolean> {
    this.assertRunning(tx);
    const row = this.rows(req.topic, req.subscription).match(req.item, req.state);
    if (!row) return false;
    const before = row.leaseUntil;
    row.leaseUntil = req.leaseUntil;
    tx?.undo.push(() => (row.leaseUntil = before));
    return true;
  }

  async settle(req: SettleRequest, tx?: MemoryTransaction): Promise<string[]> {
    this.assertRunning(tx);
    const t = this.rows(req.topic, req.subscription);
    const won: string[] = [];
    for (const item of req.items) {
      const row = t.match(item, req.from);
      if (!row) continue;
      this.keepForUndo(t, row, tx);
      if (req.remove) t.remove(row);
      else {
        unlease(row);
        t.move(row, req.to);
      }
      won.push(row.id);
    }
    return won;
  }

  async release(req: ReleaseRequest, tx?: MemoryTransaction): Promise<string[]> {
    const t = this.rows(req.topic, req.subscription);
    const won: string[] = [];
    for (const item of req.items) {
      const row = t.match(item, req.from);
      if (!row) continue;
      this.keepForUndo(t, row, tx);
      unlease(row);
      row.availableAt = item.availableAt;
      row.lastError = item.error;
      t.move(row, req.to);
      won.push(row.id);
    }
    return won;
  }

  async expire(req: ExpireRequest, tx?: MemoryTransaction): Promise<StoredMessage[]> {
    const t = this.rows(req.topic, req.subscription);
    const { atLeast = -Infinity, below = Infinity } = req.deliveries ?? {};
    const moved: StoredMessage[] = [];
    for (const row of [...t.bucket(req.from).values()]) {
      if ((row.leaseUntil ?? Infinity) > req.now || row.deliveries < atLeast || row.deliveries >= below) continue;
      this.keepForUndo(t, row, tx);
      unlease(row);
      row.availableAt = req.now;
      t.move(row, req.to);
      moved.push(copy(row));
    }
    return moved;
  }

  /** Inside a transaction, remembers a row as it is, to put it back on rollback. */
  private keepForUndo(t: SubscriptionRows, row: Row, tx?: MemoryTransaction): void {
    if (!tx) return;
    const before = { ...row };
    tx.undo.push(() => {
      if (t.byId.get(row.id) === row) t.remove(row);
      for (const k of Object.keys(row) as Array<keyof Row>) if (!(k in before)) delete row[k];
      Object.assign(row, before);
      t.insert(row);
    });
  }

  async redrive(req: RedriveRequest): Promise<string[]> {
    const t = this.rows(req.topic, req.subscription);
    const wanted = req.ids ? new Set(req.ids) : undefined;
    const moved: string[] = [];
    for (const row of [...t.bucket(req.from).values()]) {
      if (wanted && !wanted.has(row.id)) continue;
      t.remove(row);
      // A new lifecycle, in its old place in store order: a key it held stays held by it.
      const again: Row = {
        id: row.id,
        topic: row.topic,
        subscription: row.subscription,
        body: row.body,
        state: req.to,
        deliveries: 0,
        availableAt: req.now,
        createdAt: req.now,
        seq: row.seq,
      };
      if (row.key !== undefined) again.key = row.key;
      if (row.headers !== undefined) again.headers = row.headers;
      t.insert(again);
      moved.push(row.id);
    }
    return moved;
  }

  async counts(topic?: string): Promise<SubscriptionCounts> {
    this.assertOpen();
    const out: SubscriptionCounts = {};
    for (const [name, t] of this.rowsByTopic) {
      if (topic !== undefined && name !== topic) continue;
      const byName: SubscriptionCounts[string] = (out[name] = {});
      for (const [sub, rows] of t.subscriptions) {
        const c: SubscriptionCounts[string][string] = (byName[sub] = {});
        for (const [state, bucket] of rows.byState) if (bucket.size > 0) c[state] = bucket.size;
      }
    }
    return out;
  }

  async peek(req: PeekRequest): Promise<StoredMessage[]> {
    return [...this.rows(req.topic, req.subscription).bucket(req.state).values()]
      .sort((a, b) => a.seq - b.seq)
      .slice(0, req.limit)
      .map((r) => copy(r));
  }

  async browse(req: BrowseRequest): Promise<BrowsePage> {
    this.assertOpen();
    const t = this.rows(req.topic, req.subscription);
    const one = req.id === undefined ? undefined : t.byId.get(req.id);
    const source =
      req.id !== undefined ? (one ? [one] : []) : req.state !== undefined && req.key === undefined ? t.bucket(req.state).values() : t.byId.values();
    const [afterAt, afterSeq] = req.after === undefined ? [-Infinity, -Infinity] : req.after.split(':').map(Number);
    if (!Number.isFinite(afterAt) || !Number.isFinite(afterSeq)) {
      if (req.after !== undefined)
        throw new InvalidOptionsError(
          `"${req.after}" is not a cursor this storage made: pass the \`next\` of the page before, or leave it out to start from the first page.`,
        );
    }
    const page: Row[] = [];
    for (const row of source) {
      if (req.state !== undefined && row.state !== req.state) continue;
      if (req.key !== undefined && row.key !== req.key) continue;
      if (req.due && row.availableAt > req.due.now !== req.due.later) continue;
      if (row.availableAt < afterAt! || (row.availableAt === afterAt && row.seq <= afterSeq!)) continue;
      page.push(row);
    }
    page.sort((a, b) => a.availableAt - b.availableAt || a.seq - b.seq);
    const last = page.length > req.limit ? page[req.limit - 1] : undefined;
    return { messages: page.slice(0, req.limit).map((r) => copy(r)), ...(last ? { next: `${last.availableAt}:${last.seq}` } : {}) };
  }

  async discard(req: DiscardRequest): Promise<number> {
    this.assertOpen();
    const t = this.rows(req.topic, req.subscription);
    const wanted = req.ids ? new Set(req.ids) : undefined;
    let dropped = 0;
    for (const row of [...t.bucket(req.state).values()]) {
      if ((wanted && !wanted.has(row.id)) || row.leaseToken !== undefined) continue;
      t.remove(row);
      dropped++;
    }
    return dropped;
  }

  async retryNow(req: RetryNowRequest): Promise<string[]> {
    this.assertOpen();
    const wanted = req.ids ? new Set(req.ids) : undefined;
    const moved: string[] = [];
    for (const row of this.rows(req.topic, req.subscription).bucket(req.state).values()) {
      if ((wanted && !wanted.has(row.id)) || row.availableAt <= req.now) continue;
      row.availableAt = req.now;
      moved.push(row.id);
    }
    return moved;
  }

  async setPaused(topic: string, name: string, pausedAt: number | undefined): Promise<boolean> {
    this.assertOpen();
    const record = this.subscriptionRegistry.get(topic)?.get(name);
    if (!record) return false;
    if (pausedAt === undefined) delete record.pausedAt;
    else record.pausedAt = pausedAt;
    return true;
  }

  async declareTopic(topic: TopicRecord): Promise<TopicRecord> {
    this.assertOpen();
    if (!this.registry.has(topic.name)) this.registry.set(topic.name, { ...topic });
    return { ...this.registry.get(topic.name)! };
  }

  async topics(): Promise<TopicRecord[]> {
    this.assertOpen();
    return [...this.registry.values()].sort((a, b) => (a.name < b.name ? -1 : 1)).map((t) => ({ ...t }));
  }

  async declareSubscription(subscription: SubscriptionRecord): Promise<SubscriptionRecord> {
    this.assertOpen();
    let byName = this.subscriptionRegistry.get(subscription.topic);
    if (!byName) this.subscriptionRegistry.set(subscription.topic, (byName = new Map()));
    if (!byName.has(subscription.name)) byName.set(subscription.name, { ...subscription });
    return { ...byName.get(subscription.name)! };
  }

  async subscriptions(topic?: string): Promise<SubscriptionRecord[]> {
    this.assertOpen();
    const all = [...this.subscriptionRegistry.entries()].filter(([t]) => topic === undefined || t === topic).flatMap(([, byName]) => [...byName.values()]);
    return all.sort((a, b) => (a.topic === b.topic ? (a.name < b.name ? -1 : 1) : a.topic < b.topic ? -1 : 1)).map((s) => ({ ...s }));
  }

  async removeSubscription(topic: string, name: string): Promise<number> {
    this.assertOpen();
    this.subscriptionRegistry.get(topic)?.delete(name);
    const t = this.rowsByTopic.get(topic);
    const dropped = t?.subscriptions.get(name)?.size ?? 0;
    t?.subscriptions.delete(name);
    return dropped;
  }

  async purge(req: PurgeRequest): Promise<number> {
    this.assertOpen();
    let removed = 0;
    for (const [name, t] of this.rowsByTopic) {
      if (req.topic !== undefined && name !== req.topic) continue;
      for (const [id, until] of t.dedup) {
        if (until <= req.now) {
          t.dedup.delete(id);
          removed++;
        }
      }
      if (req.before === undefined) continue;
      for (const rows of t.subscriptions.values()) {
        for (const state of req.states ?? []) {
          for (const row of [...rows.bucket(state).values()]) {
            if (row.createdAt < req.before) {
              rows.remove(row);
              removed++;
            }
          }
        }
      }
    }
    return removed;
  }

  /** Runs `fn`; if it throws, undoes what it stored, settled and recorded through `tx`. No isolation: other calls see its writes at once. */
  async transaction<T>(fn: (tx: MemoryTransaction) => Promise<T>): Promise<T> {
    this.assertOpen();
    const tx: MemoryTransaction = { undo: [] };
    this.running.add(tx);
    try {
      return await fn(tx);
    } catch (error) {
      for (const step of tx.undo.reverse()) step();
      throw error;
    } finally {
      this.running.delete(tx);
    }
  }

  /** Handlers running at once share the transaction's undo log: a rollback undoes them all. */
  branch<T>(tx: MemoryTransaction, fn: (own: () => MemoryTransaction) => Promise<T>): Promise<T> {
    this.assertRunning(tx);
    return fn(() => tx);
  }

  idempotencyStore(): IdempotencyStore<MemoryTransaction> {
    return this.idempotency;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

/** In-memory storage: no durability, one process. For tests, at-most-once topics and trying things out. */
export function memoryStorage(): MemoryStorage {
  return new MemoryStorage();
}

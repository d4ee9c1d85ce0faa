import {
  ClosedError,
  StorageError,
  type ExpireRequest,
  type ExtendLeaseRequest,
  type IdempotencyStore,
  type LeaseRequest,
  type MessageState,
  type PurgeRequest,
  type RedriveRequest,
  type ReleaseRequest,
  type SettleItem,
  type SettleRequest,
  type StateCounts,
  type StorageAdapter,
  type StoredMessage,
  type StoreRequest,
  type StoreResult,
  type TopicRecord,
} from '@tidings/core';
import { MemoryIdempotencyStore } from '@tidings/idempotency';

type Row = StoredMessage;

/** One topic's rows, indexed by id and bucketed by state in arrival order (FIFO leasing). */
class TopicRows {
  readonly byId = new Map<string, Row>();
  readonly byState = new Map<MessageState, Map<string, Row>>();
  /** Ids remembered for deduplication, with the epoch ms they expire at. */
  readonly dedup = new Map<string, number>();

  bucket(state: MessageState): Map<string, Row> {
    let b = this.byState.get(state);
    if (!b) this.byState.set(state, (b = new Map()));
    return b;
  }

  insert(row: Row): void {
    this.byId.set(row.id, row);
    this.bucket(row.state).set(row.id, row);
  }

  move(row: Row, to: MessageState): void {
    this.byState.get(row.state)?.delete(row.id);
    row.state = to;
    this.bucket(to).set(row.id, row);
  }

  remove(row: Row): void {
    this.byId.delete(row.id);
    this.byState.get(row.state)?.delete(row.id);
  }

  /** The row if it is in `from` and, when a token is given, still under that lease. */
  match(item: SettleItem, from: MessageState): Row | undefined {
    const row = this.byId.get(item.id);
    if (!row || row.state !== from) return undefined;
    if (item.leaseToken !== undefined && row.leaseToken !== item.leaseToken) return undefined;
    return row;
  }
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

  private rows(topic: string): TopicRows {
    this.assertOpen();
    let t = this.rowsByTopic.get(topic);
    if (!t) this.rowsByTopic.set(topic, (t = new TopicRows()));
    return t;
  }

  async store(req: StoreRequest, tx?: MemoryTransaction): Promise<StoreResult[]> {
    this.assertRunning(tx);
    const t = this.rows(req.topic);
    return req.messages.map((m) => {
      const held = t.byId.has(m.id) || (t.dedup.get(m.id) ?? -Infinity) > req.now;
      if (held) return { id: m.id, duplicate: true };
      const row: Row = { id: m.id, topic: req.topic, body: m.body, state: req.state, deliveries: 0, availableAt: m.availableAt, createdAt: req.now, lastError: m.lastError, headers: m.headers };
      t.insert(row);
      tx?.undo.push(() => t.remove(row));
      if (req.dedupUntil !== undefined) {
        const before = t.dedup.get(m.id);
        t.dedup.set(m.id, req.dedupUntil);
        tx?.undo.push(() => (before === undefined ? t.dedup.delete(m.id) : t.dedup.set(m.id, before)));
      }
      return { id: m.id, duplicate: false };
    });
  }

  async lease(req: LeaseRequest): Promise<StoredMessage[]> {
    const t = this.rows(req.topic);
    const out: StoredMessage[] = [];
    for (const row of t.bucket(req.from).values()) {
      if (out.length >= req.limit) break;
      if (row.availableAt > req.now) continue;
      row.deliveries++;
      row.leaseUntil = req.leaseUntil;
      row.leaseToken = req.leaseToken;
      if (req.remove) t.remove(row);
      else t.move(row, req.to);
      out.push({ ...row, state: req.to });
    }
    return out;
  }

  async extendLease(req: ExtendLeaseRequest, tx?: MemoryTransaction): Promise<boolean> {
    this.assertRunning(tx);
    const row = this.rows(req.topic).match(req.item, req.state);
    if (!row) return false;
    const before = row.leaseUntil;
    row.leaseUntil = req.leaseUntil;
    tx?.undo.push(() => (row.leaseUntil = before));
    return true;
  }

  async settle(req: SettleRequest, tx?: MemoryTransaction): Promise<string[]> {
    this.assertRunning(tx);
    const t = this.rows(req.topic);
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
    const t = this.rows(req.topic);
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
    const t = this.rows(req.topic);
    const { atLeast = -Infinity, below = Infinity } = req.deliveries ?? {};
    const moved: StoredMessage[] = [];
    for (const row of [...t.bucket(req.from).values()]) {
      if ((row.leaseUntil ?? Infinity) > req.now || row.deliveries < atLeast || row.deliveries >= below) continue;
      this.keepForUndo(t, row, tx);
      unlease(row);
      row.availableAt = req.now;
      t.move(row, req.to);
      moved.push({ ...row });
    }
    return moved;
  }

  /** Inside a transaction, remembers a row as it is, to put it back on rollback. */
  private keepForUndo(t: TopicRows, row: Row, tx?: MemoryTransaction): void {
    if (!tx) return;
    const before = { ...row };
    tx.undo.push(() => {
      if (t.byId.get(row.id) === row) t.remove(row);
      Object.assign(row, before);
      t.insert(row);
    });
  }

  async redrive(req: RedriveRequest): Promise<number> {
    const t = this.rows(req.topic);
    const wanted = req.ids ? new Set(req.ids) : undefined;
    let n = 0;
    for (const row of [...t.bucket(req.from).values()]) {
      if (wanted && !wanted.has(row.id)) continue;
      t.remove(row);
      t.insert({ id: row.id, topic: row.topic, body: row.body, state: req.to, deliveries: 0, availableAt: req.now, createdAt: req.now, headers: row.headers });
      n++;
    }
    return n;
  }

  async counts(topic?: string): Promise<StateCounts> {
    this.assertOpen();
    const out: StateCounts = {};
    for (const [name, t] of this.rowsByTopic) {
      if (topic !== undefined && name !== topic) continue;
      const c: StateCounts[string] = {};
      for (const [state, bucket] of t.byState) if (bucket.size > 0) c[state] = bucket.size;
      out[name] = c;
    }
    return out;
  }

  async peek(topic: string, state: MessageState, limit: number): Promise<StoredMessage[]> {
    return [...this.rows(topic).bucket(state).values()].slice(0, limit).map((r) => ({ ...r }));
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
      for (const state of req.states ?? []) {
        for (const row of [...t.bucket(state).values()]) {
          if (row.createdAt < req.before) {
            t.remove(row);
            removed++;
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
  branch<T>(tx: MemoryTransaction, fn: (tx: MemoryTransaction) => Promise<T>): Promise<T> {
    this.assertRunning(tx);
    return fn(tx);
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

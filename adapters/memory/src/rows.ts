import type { MessageState } from '@tidings/core';
import type { SettleItem, StoredMessage } from '@tidings/core/adapter';

/** A stored copy, with its place in store order. */
export type Row = StoredMessage & { seq: number };

/** One subscription's copies: by id, by state (in arrival order, FIFO leasing) and by key (in store order). */
export class SubscriptionRows {
  constructor(readonly name: string) {}

  readonly byId = new Map<string, Row>();
  readonly byState = new Map<MessageState, Map<string, Row>>();
  /** Each key's copies still held, in store order: what a lease that holds keys asks about. */
  private readonly byKey = new Map<string, Row[]>();

  bucket(state: MessageState): Map<string, Row> {
    let b = this.byState.get(state);
    if (!b) this.byState.set(state, (b = new Map()));
    return b;
  }

  insert(row: Row): void {
    this.byId.set(row.id, row);
    this.bucket(row.state).set(row.id, row);
    if (row.key === undefined) return;
    const rows = this.byKey.get(row.key) ?? [];
    // A row put back (a rollback, a redrive) takes its place by seq again.
    let at = rows.length;
    while (at > 0 && rows[at - 1]!.seq > row.seq) at--;
    rows.splice(at, 0, row);
    this.byKey.set(row.key, rows);
  }

  move(row: Row, to: MessageState): void {
    this.byState.get(row.state)?.delete(row.id);
    row.state = to;
    this.bucket(to).set(row.id, row);
  }

  remove(row: Row): void {
    this.byId.delete(row.id);
    this.byState.get(row.state)?.delete(row.id);
    if (row.key === undefined) return;
    const rows = this.byKey.get(row.key);
    const at = rows?.indexOf(row) ?? -1;
    if (at >= 0) rows!.splice(at, 1);
    if (rows?.length === 0) this.byKey.delete(row.key);
  }

  /** Whether a copy of the same key stored before `row` is in one of `states`. */
  keyHeld(row: Row, states: readonly MessageState[]): boolean {
    for (const r of this.byKey.get(row.key!) ?? []) {
      if (r.seq >= row.seq) return false;
      if (states.includes(r.state)) return true;
    }
    return false;
  }

  /** The row if it is in `from` and, when a token is given, still under that lease. */
  match(item: SettleItem, from: MessageState): Row | undefined {
    const row = this.byId.get(item.id);
    if (!row || row.state !== from) return undefined;
    if (item.leaseToken !== undefined && row.leaseToken !== item.leaseToken) return undefined;
    return row;
  }

  /** How many copies it holds. */
  get size(): number {
    return this.byId.size;
  }
}

/** One topic's subscriptions' copies, and the ids its dedup window remembers. */
export class TopicRows {
  readonly subscriptions = new Map<string, SubscriptionRows>();
  /** Ids remembered for deduplication, with the epoch ms they expire at. */
  readonly dedup = new Map<string, number>();

  subscription(name: string): SubscriptionRows {
    let s = this.subscriptions.get(name);
    if (!s) this.subscriptions.set(name, (s = new SubscriptionRows(name)));
    return s;
  }
}

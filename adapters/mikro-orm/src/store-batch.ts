import type { StoreRequest, StoreResult } from '@tidings/core/adapter';

interface Waiting {
  readonly req: StoreRequest;
  resolve(results: StoreResult[]): void;
  reject(error: unknown): void;
}

/**
 * Stores that arrive in one turn of the event loop for one topic and state, merged into one statement: PostgreSQL's
 * group commit, one commit (and one fsync) for the sends of many callers. Each caller gets its own slice of the
 * answer; an id sent twice in one turn is stored once, as two stores in a row would have it.
 */
export class StoreBatcher {
  private pending = new Map<string, Waiting[]>();
  private scheduled = false;
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly storeNow: (req: StoreRequest) => Promise<StoreResult[]>) {}

  /** Queues a store for this turn's statement of its topic and state. */
  add(req: StoreRequest): Promise<StoreResult[]> {
    const key = `${req.topic}\u0000${req.state}\u0000${req.dedupUntil === undefined ? '' : 'dedup'}`;
    return new Promise<StoreResult[]>((resolve, reject) => {
      const group = this.pending.get(key);
      if (group) group.push({ req, resolve, reject });
      else this.pending.set(key, [{ req, resolve, reject }]);
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /** Sends what is queued now, and resolves once every statement sent has answered (before the connection closes). */
  async drain(): Promise<void> {
    this.flush();
    await Promise.all(this.running);
  }

  private flush(): void {
    this.scheduled = false;
    const groups = [...this.pending.values()];
    this.pending = new Map();
    for (const group of groups) {
      const run = this.run(group).finally(() => this.running.delete(run));
      this.running.add(run);
    }
  }

  private async run(group: Waiting[]): Promise<void> {
    const [first] = group as [Waiting, ...Waiting[]];
    // The turn's first store names the time; a later one's window may end a few ms later, so the longest is kept.
    const dedupUntil = first.req.dedupUntil === undefined ? undefined : Math.max(...group.map((w) => w.req.dedupUntil!));
    const merged: StoreRequest = { ...first.req, dedupUntil, messages: group.length === 1 ? first.req.messages : group.flatMap((w) => w.req.messages) };
    try {
      const results = await this.storeNow(merged);
      let at = 0;
      for (const w of group) w.resolve(results.slice(at, (at += w.req.messages.length)));
    } catch (error) {
      for (const w of group) w.reject(error);
    }
  }
}

import type { TidingsEventBus } from '../events.js';
import type { Logger } from '../services.js';
import type { StorageAdapter } from '../storage/contract.js';

/** A subscription whose consumers follow its pause, and wake when an operator makes its messages due. */
export interface Pausable {
  readonly topic: { readonly name: string };
  readonly name: string;
  /** Its consumers running in this process. */
  readonly consumers: ReadonlySet<{ pause(): void; resume(): void; wake(): void }>;
  /** Whether it is paused, as last read. */
  paused: boolean;
}

/** How often each process reads the pauses of the subscriptions it consumes (ms): a pause elsewhere lands within it. */
export const PAUSE_CHECK_MS = 500;

/**
 * The pauses of the subscriptions this process consumes, kept current: at once for an operator's act in this
 * process (its `operator` event), and for other processes' by reading the registry every `PAUSE_CHECK_MS` while a
 * consumer runs, one query for all of them. Storage records the pause; this only tells the consumers. Since it hears
 * every operator's act here, it also wakes them when one makes messages due (retry now, redrive).
 */
export class PauseWatch {
  private readonly followed = new Set<Pausable>();
  private timer?: NodeJS.Timeout;
  private reading?: Promise<void>;

  constructor(
    private readonly storage: StorageAdapter<unknown>,
    events: TidingsEventBus,
    private readonly logger: Logger,
    private readonly everyMs = PAUSE_CHECK_MS,
  ) {
    events.on('operator', (e) => {
      for (const s of this.followed) {
        if (s.topic.name !== e.topic || s.name !== e.subscription) continue;
        if (e.action === 'pause' || e.action === 'resume') set(s, e.action === 'pause');
        // Messages made due through a ledger without this subscription's wake-up (the dashboard's, over the records)
        // must not wait for the consumers' next poll.
        else if ((e.action === 'retryNow' || e.action === 'redrive') && e.count > 0) for (const c of s.consumers) c.wake();
      }
    });
  }

  /** Starts following `s` (a consumer of it starts): resolves once its pause has been read. */
  async follow(s: Pausable): Promise<void> {
    this.followed.add(s);
    if (!this.timer) {
      this.timer = setInterval(() => void this.read(), this.everyMs);
      this.timer.unref();
    }
    await this.read();
  }

  /** Reads every followed subscription's pause in one query; stops reading once none has a consumer. */
  private read(): Promise<void> {
    for (const s of this.followed) if (s.consumers.size === 0) this.followed.delete(s);
    if (this.followed.size === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return Promise.resolve();
    }
    this.reading ??= this.storage
      .subscriptions()
      .then((records) => {
        const paused = new Set(records.filter((r) => r.pausedAt !== undefined).map((r) => `${r.topic}\u0000${r.name}`));
        for (const s of this.followed) set(s, paused.has(`${s.topic.name}\u0000${s.name}`));
      })
      // A failed read keeps what was last read (consumers report the storage's trouble themselves); tried again next tick.
      .catch((error: unknown) => this.logger.debug('reading subscription pauses failed', { error: String(error) }))
      .finally(() => (this.reading = undefined));
    return this.reading;
  }

  /** Stops reading (the instance closes). */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

function set(s: Pausable, paused: boolean): void {
  if (s.paused === paused) return;
  s.paused = paused;
  for (const c of s.consumers) {
    if (paused) c.pause();
    else c.resume();
  }
}

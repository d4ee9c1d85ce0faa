import type { MikroORM } from '@mikro-orm/core';
import type { WakeUpHealth } from '@tidings/core/adapter';
import type { SqlDialect } from './dialect.js';

/** Backoff between attempts to listen again, in ms: quick at first (a backend terminated), then every 5 s (a server down). */
const RETRY_MS = [50, 100, 250, 500, 1_000, 2_000, 5_000];

/**
 * The storage's one listening connection (PostgreSQL `LISTEN`, SQLite's WAL watch), kept alive: after any loss (a
 * terminated backend, a server restart, a database down at start-up) it listens again with backoff, and once it
 * does, wakes every consumer once, since messages may have been stored while nobody listened. Meanwhile consumers
 * poll, as they always may.
 */
export class WakeUps {
  private state: WakeUpHealth['state'] = 'connecting';
  private since = Date.now();
  private lastError?: string;
  private attempt = 0;
  private retry?: NodeJS.Timeout;
  private closer?: () => Promise<unknown>;
  private connecting?: Promise<void>;
  private closed = false;
  /** Set once listening worked or an attempt failed: from then on, listening (again) must wake every consumer. */
  private listenedBefore = false;

  constructor(
    private readonly dialect: Required<Pick<SqlDialect, 'listen'>>,
    private readonly orm: () => MikroORM,
    private readonly onTopic: (topic: string) => void,
    /** Wakes every consumer: messages may have come while nobody listened. */
    private readonly onRestored: () => void,
  ) {}

  /** Starts listening (once); failures are retried in the background. */
  start(): void {
    if (this.connecting || this.closer || this.retry || this.closed) return;
    this.connecting = this.connect().finally(() => (this.connecting = undefined));
  }

  /** Whether wake-ups arrive now, since when, and why not when they do not. */
  health(): WakeUpHealth {
    return { state: this.state, since: this.since, ...(this.lastError !== undefined && this.state !== 'live' ? { lastError: this.lastError } : {}) };
  }

  private async connect(): Promise<void> {
    let lost = false;
    const onLost = (error?: unknown) => {
      if (lost || this.closed) return;
      lost = true;
      const closer = this.closer;
      this.closer = undefined;
      void closer?.().catch(() => undefined);
      this.down(error ?? new Error('the listening connection ended'));
    };
    try {
      const closer = await this.dialect.listen(this.orm(), this.onTopic, onLost);
      if (this.closed || lost) {
        await closer().catch(() => undefined);
        return;
      }
      this.closer = closer;
      this.attempt = 0;
      this.set('live');
      if (this.listenedBefore) this.onRestored();
      this.listenedBefore = true;
    } catch (error) {
      this.down(error);
    }
  }

  private down(error: unknown): void {
    if (this.closed) return;
    this.lastError = error instanceof Error ? error.message : String(error);
    this.set('reconnecting');
    // Messages stored before the loss was noticed, or before the first attempt failed, are found by the next wake-up.
    this.listenedBefore = true;
    const delay = RETRY_MS[Math.min(this.attempt++, RETRY_MS.length - 1)]!;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      this.start();
    }, delay);
    this.retry.unref();
  }

  private set(state: WakeUpHealth['state']): void {
    if (this.state !== state) this.since = Date.now();
    this.state = state;
  }

  /** Stops listening for good. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.retry);
    await this.connecting;
    const closer = this.closer;
    this.closer = undefined;
    await closer?.().catch(() => undefined);
  }
}

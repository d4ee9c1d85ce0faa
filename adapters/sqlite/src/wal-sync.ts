import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Syncs a database's write-ahead log in libuv's thread pool, so that a durable commit does not hold the event loop
 * for its fsync: the commit runs with `synchronous=NORMAL` (its frames written, not synced) and its writes are acked
 * only once this resolved. A call made while a sync runs gets the next one, which covers every frame written before
 * it. The log stays open between syncs: SQLite locks the database file and `-shm`, never the log, so this
 * descriptor cannot drop a lock when it closes.
 */
export class WalSync {
  private handle?: Promise<FileHandle>;
  private last: Promise<void> = Promise.resolve();
  private waiting?: Promise<void>;

  constructor(private readonly databaseFile: string) {}

  /** Resolves once every frame the log held when it was called is on disk. */
  sync(): Promise<void> {
    if (this.waiting) return this.waiting;
    const next = this.last
      .catch(() => undefined)
      .then(() => {
        this.waiting = undefined;
        return this.once();
      });
    this.waiting = next;
    this.last = next;
    return next;
  }

  private async once(): Promise<void> {
    // The last connection to close deletes the log once it checkpointed it (synced into the database), and the next
    // write starts a new one: sync the file the path names now, or nothing if there is none.
    const named = await stat(this.path).catch(() => undefined);
    if (!named) return;
    let log = await this.opened();
    const held = await log.stat();
    if (named.ino !== held.ino || named.dev !== held.dev) {
      this.handle = undefined;
      await log.close();
      log = await this.opened();
    }
    await log.datasync();
  }

  private async opened(): Promise<FileHandle> {
    this.handle ??= this.openLog();
    return this.handle.catch((error: unknown) => {
      this.handle = undefined;
      throw error;
    });
  }

  private get path(): string {
    return `${this.databaseFile}-wal`;
  }

  /** Opens the log, and syncs its folder once so that the log's own entry there survives a power cut too. */
  private async openLog(): Promise<FileHandle> {
    const log = await open(this.path, 'r');
    const folder = await open(dirname(this.databaseFile), 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
    return log;
  }

  /** Waits for the sync in flight, then closes the log. */
  async close(): Promise<void> {
    await this.last.catch(() => undefined);
    const log = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    await log?.close();
  }
}

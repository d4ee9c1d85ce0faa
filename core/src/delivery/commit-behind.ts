import type { Settler } from './settler.js';

/**
 * Exactly-once batches one commit behind: a batch's consumption goes on committing in the background once its handlers
 * returned, while the next batch is leased and handled, and the next batch waits for it before it resolves in turn.
 * Its messages stay leased until the commit, so no other consumer (and no next message of a key) gets them meanwhile.
 */
export class CommitBehind {
  /** The previous batch's consumption, still committing. */
  private committing: Promise<void> = Promise.resolve();

  constructor(private readonly settler: Settler) {}

  /**
   * Runs `consume`, which calls `handled()` once the batch's handlers returned, and resolves then (or when `consume`
   * settles first) and once the previous batch committed. A failure before the handlers returned rejects here; after
   * that, the settler reports it.
   */
  async run(consume: (handled: () => void) => Promise<void>): Promise<void> {
    let handled!: () => void;
    const returned = new Promise<void>((resolve) => (handled = resolve));
    const consumed = consume(handled);
    await Promise.race([returned, consumed]);
    this.settler.track(consumed);
    const previous = this.committing;
    this.committing = consumed.catch(() => undefined);
    await previous;
  }
}

/** A callback per part that calls `done` once every part called its own (each counts once). */
export function countdown(parts: number, done: () => void): Array<() => void> {
  let waiting = parts;
  return Array.from({ length: parts }, () => {
    let called = false;
    return () => {
      if (!called && (called = true) && --waiting === 0) done();
    };
  });
}

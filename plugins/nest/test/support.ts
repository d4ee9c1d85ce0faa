import type { LoggerService } from '@nestjs/common';

let n = 0;
/** A topic name no other test uses. */
export const uniqueTopic = (prefix = 'nest') => `${prefix}.${process.pid}.${++n}`;

/** Polls `check` until it holds. */
export async function waitFor(check: () => boolean | Promise<boolean>, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Nest logger that keeps what is logged, so a test can assert that nothing went wrong. */
export class RecordingLogger implements LoggerService {
  readonly errors: unknown[][] = [];
  readonly warnings: unknown[][] = [];
  log(): void {}
  debug(): void {}
  verbose(): void {}
  error(...args: unknown[]): void {
    this.errors.push(args);
  }
  warn(...args: unknown[]): void {
    this.warnings.push(args);
  }
}

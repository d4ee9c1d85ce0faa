import { TidingsError } from '@tidings/core';

/** What `tidings demo` passes on from its command line. */
export interface DemoOptions {
  /** Messages to send per semantic. */
  messages: number;
  /** Seed of the fault schedule, so a run replays. */
  seed: number;
  faults: 'none' | 'default' | 'heavy';
  json: boolean;
  /** Folder for the demo's files (default: the demo's choice). */
  dir?: string;
}

/** Runs the four semantics side by side under faults and reports what each guaranteed; resolves to the exit code. */
export async function runDemo(_options: DemoOptions): Promise<number> {
  throw new TidingsError('NOT_READY', 'tidings demo is not ready yet.');
}

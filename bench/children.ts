// Scenarios' second processes: started with the sources (tsx, @tidings/source), talking over IPC.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BenchFailure } from './rows.js';

const root = fileURLToPath(new URL('..', import.meta.url));

/** A message between a bench process and its child. */
export type ChildMessage = { type: string } & Record<string, unknown>;

/** A child process running one of bench/'s scripts; its stdout goes to our stderr, so `--json` stays clean. */
export class BenchChild {
  private readonly proc: ChildProcess;
  private exitError?: Error;
  private stopping = false;
  readonly exited: Promise<void>;

  /**
   * Starts `node --conditions=@tidings/source --import tsx bench/<script> <config as JSON>`, or, given `bundle` (see
   * bundle.ts), plain `node <bundle> <config as JSON>`.
   */
  constructor(script: string, config: unknown, onMessage: (m: ChildMessage) => void, bundle?: string) {
    const args = bundle ? [bundle] : ['--conditions=@tidings/source', '--import', 'tsx', `bench/${script}`];
    this.proc = spawn(process.execPath, [...args, JSON.stringify(config)], { cwd: root, stdio: ['ignore', 2, 'inherit', 'ipc'] });
    this.proc.on('message', (m) => onMessage(m as ChildMessage));
    this.exited = new Promise((resolve) => {
      this.proc.once('exit', (code, signal) => {
        if (!this.stopping || code !== 0) this.exitError ??= new BenchFailure(`bench/${script} exited (${signal ?? code}) before it was done`);
        resolve();
      });
      this.proc.once('error', (error) => {
        this.exitError ??= error;
        resolve();
      });
    });
  }

  /** The child's failure: it exited unasked, or not cleanly. */
  failed(): Error | undefined {
    return this.exitError;
  }

  /** Resolves with the first message of `type` (rejecting if the child exits first or `ms` pass). */
  waitFor(type: string, ms: number, filter: (m: ChildMessage) => boolean = () => true): Promise<ChildMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => done(new BenchFailure(`bench child: no "${type}" within ${Math.round(ms / 1000)} s`)), ms);
      const onMessage = (m: ChildMessage) => {
        if (m.type === type && filter(m)) done(undefined, m);
        else if (m.type === 'error') done(new BenchFailure(`bench child: ${String(m.message)}`));
      };
      const onExit = () => done(this.exitError ?? new BenchFailure(`bench child exited before "${type}"`));
      const done = (error?: Error, m?: ChildMessage) => {
        clearTimeout(timer);
        this.proc.off('message', onMessage);
        this.proc.off('exit', onExit);
        if (error) reject(error);
        else resolve(m!);
      };
      this.proc.on('message', onMessage);
      this.proc.once('exit', onExit);
    });
  }

  send(m: ChildMessage): void {
    if (this.proc.connected) this.proc.send(m);
  }

  /** Asks the child to stop (`{ type: 'stop' }`) and waits for it to exit; kills it after `ms`. */
  async stop(ms = 60_000): Promise<void> {
    this.stopping = true;
    this.send({ type: 'stop' });
    const timer = setTimeout(() => this.kill(), ms);
    await this.exited;
    clearTimeout(timer);
    const error = this.exitError;
    if (error) throw error;
  }

  /** Ends the child at once (a failed run's clean-up). */
  kill(): void {
    this.stopping = true;
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { changeBetween } from './changes.js';
import type { Monitor, Snapshot } from './monitor.js';

/**
 * The live stream's server side: a page gets the latest snapshot when it connects (`event: snapshot`), then one
 * `event: change` per sample with only what changed, computed once for every open page.
 */
export class Feed {
  private readonly pages = new Set<ServerResponse>();
  private last?: Snapshot;
  private readonly unsubscribe: () => void;

  constructor(monitor: Monitor) {
    this.unsubscribe = monitor.subscribe((snapshot) => this.next(snapshot));
  }

  /** Answers `req` with the stream until the page goes away or the feed closes. */
  open(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.write('retry: 1000\n\n');
    if (this.last) res.write(frame('snapshot', this.last));
    this.pages.add(res);
    const end = () => this.pages.delete(res);
    req.on('close', end);
    res.on('close', end);
  }

  /** Ends every page's stream. */
  close(): void {
    this.unsubscribe();
    for (const res of this.pages) res.end();
    this.pages.clear();
  }

  private next(snapshot: Snapshot): void {
    const text = this.last ? frame('change', changeBetween(this.last, snapshot)) : frame('snapshot', snapshot);
    this.last = snapshot;
    for (const res of this.pages) res.write(text);
  }
}

function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

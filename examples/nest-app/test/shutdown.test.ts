import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freshDatabase, waitFor } from './support';

const main = join(__dirname, '..', 'dist', 'main.js');

/** The built app in a process of its own, as `npm start` runs it. */
async function launch(database: string, gatewayDelayMs: number) {
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, DATABASE: database, PORT: '0', GATEWAY_DELAY_MS: String(gatewayDelayMs), NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  await waitFor(() => /listening on (\S+)/.test(output) || child.exitCode !== null, 30_000);
  const url = /listening on (\S+)/.exec(output)?.[1];
  if (!url) throw new Error(`the app did not start:\n${output}`);
  const order = (id: string) =>
    fetch(`${url}/orders`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ id, amount: 100 }) });
  return { child: child as ChildProcess, exited, order, output: () => output };
}

/** Every order's payments and confirmations, and the unfinished copies of each subscription, read from the file after the process is gone. */
function ledger(database: string) {
  const db = new Database(database, { readonly: true });
  try {
    const orders = (table: string) => (db.prepare(`SELECT "order" FROM ${table} ORDER BY "order"`).all() as Array<{ order: string }>).map((r) => r.order);
    const pending = (subscription: string) =>
      db.prepare("SELECT id, state FROM tidings_message WHERE topic = 'orders' AND subscription = ? ORDER BY id").all(subscription) as Array<{
        id: string;
        state: string;
      }>;
    return { paid: orders('payment'), pending: pending('payments'), confirmed: orders('confirmation'), unconfirmed: pending('confirmations') };
  } finally {
    db.close();
  }
}

describe('examples/nest-app in its own process', () => {
  it('on SIGTERM finishes the payment in flight and loses nothing; a restart pays no order twice', { timeout: 90_000 }, async () => {
    const database = freshDatabase();
    const orders = ['o-1', 'o-2', 'o-3'];
    const first = await launch(database, 1_500);
    // Each POST waits while a payment holds the app's one SQLite connection, so the last one is the one in flight.
    for (const id of orders) expect((await first.order(id)).status).toBe(201);
    await waitFor(() => first.output().includes('charging 100 for o-3'));
    const killedAt = Date.now();
    first.child.kill('SIGTERM');
    const exit = await first.exited;

    // Nest re-raises the signal once the app has closed; the wait is the slow payment finishing.
    expect(exit).toEqual({ code: null, signal: 'SIGTERM' });
    expect(Date.now() - killedAt).toBeGreaterThan(500);
    expect(first.output()).not.toMatch(/ERROR|WARN/);
    // Nothing is left leased, and every order is paid (and confirmed) or still waiting: none lost.
    const afterStop = ledger(database);
    expect(afterStop.paid).toContain('o-3');
    expect([...afterStop.pending, ...afterStop.unconfirmed].every((m) => m.state !== 'leased')).toBe(true);
    expect([...afterStop.paid, ...afterStop.pending.map((m) => m.id)].sort()).toEqual(orders);
    expect([...afterStop.confirmed, ...afterStop.unconfirmed.map((m) => m.id)].sort()).toEqual(orders);

    const second = await launch(database, 0);
    await waitFor(() => ledger(database).paid.length === orders.length && ledger(database).confirmed.length === orders.length, 30_000);
    await new Promise((r) => setTimeout(r, 500)); // time for a wrongly redelivered order to be paid again
    second.child.kill('SIGTERM');
    await second.exited;
    expect(ledger(database)).toEqual({ paid: orders, pending: [], confirmed: orders, unconfirmed: [] });
    expect(second.output()).not.toMatch(/ERROR|WARN/);
  });
});

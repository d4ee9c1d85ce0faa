import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tidings } from '@tidings/core';
import { betterSqliteStorage } from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'tidings-custom-adapter-'));
const tidings = await Tidings.create({ storage: betterSqliteStorage({ file: join(dir, 'tidings.db') }) });

// The application's own table lives in the same database, so a handler can write it in the message's transaction.
await tidings.storage.transaction(async ({ db }) => void db.exec('CREATE TABLE shipments (order_id TEXT PRIMARY KEY)'));

const emails = tidings.topic<string>('emails', { semantic: 'at-least-once' });
const orders = tidings.topic<{ total: number }>('orders', { semantic: 'exactly-once' });
// Two subscriptions each get a copy of every payment; within one account (the key), each handles them one at a time, in order.
const payments = tidings.topic<number>('payments', { semantic: 'at-least-once', ordering: 'key', subscriptions: ['ledger', 'audit'] });

let delivered = 0;
const emailConsumer = emails.consume((m) => {
  console.log(`delivered emails: ${m.payload} (attempt ${m.attempt})`);
  delivered++;
});
const orderConsumer = orders.consume((m, ctx) => {
  // Exactly-once: this row, the idempotency record and the message's `consumed` state commit together, or not at all.
  ctx.em.db.prepare('INSERT INTO shipments (order_id) VALUES (?)').run(m.id);
  console.log(`delivered orders: ${m.id}, total ${m.payload.total} (attempt ${m.attempt})`);
  delivered++;
});

// What each subscription handled, per account, in the order it handled it.
const handled = new Map<string, number[]>();
const paymentConsumers = ['ledger', 'audit'].map((name) =>
  payments.subscription(name).consume(
    async (m) => {
      // Earlier payments take longer here: without the key, a later one of the same account would overtake them.
      await new Promise((r) => setTimeout(r, 60 - m.payload));
      const account = `${name} ${m.key}`;
      handled.set(account, [...(handled.get(account) ?? []), m.payload]);
      delivered++;
    },
    { concurrency: 4 },
  ),
);

await emails.sendMany(['welcome', 'receipt', 'newsletter']);
const accounts = ['acct-1', 'acct-2', 'acct-1', 'acct-1', 'acct-2'];
await payments.sendMany([10, 20, 30, 40, 50], { key: (_, i) => accounts[i] });
// The producer makes the ids, so a resend (a retry after a lost ack, say) is answered as a duplicate and not stored twice.
for (const [id, total] of [
  ['order-1', 10],
  ['order-2', 25],
  ['order-1', 10],
] as const) {
  const ack = await orders.send({ total }, { id });
  console.log(`sent orders: ${id} ${ack.duplicate ? 'duplicate, not stored again' : 'stored'}`);
}

while (delivered < 15) await new Promise((r) => setTimeout(r, 10));
await emailConsumer.stop();
await orderConsumer.stop();
await Promise.all(paymentConsumers.map((c) => c.stop()));
for (const [account, amounts] of [...handled].sort()) console.log(`payments ${account}: ${amounts.join(', ')}`);

const shipped = await tidings.storage.transaction(async ({ db }) => db.prepare('SELECT order_id FROM shipments ORDER BY order_id').pluck().all());
console.log(`shipments table: ${shipped.join(', ')}`);
await tidings.close();
rmSync(dir, { recursive: true, force: true });

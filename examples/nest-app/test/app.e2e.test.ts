import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { freshDatabase, startApp, waitFor } from './support';

const paymentRows = (file: string) => {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM payment').get() as { n: number }).n;
  } finally {
    db.close();
  }
};

type App = Awaited<ReturnType<typeof startApp>>;
const running: App[] = [];
async function start(options?: Parameters<typeof startApp>[0]) {
  const app = await startApp(options);
  running.push(app);
  return app;
}
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.app.close()));
});

describe('examples/nest-app', () => {
  it('turns one order into exactly one payment, and logs nothing amiss', async () => {
    const app = await start();
    const res = await app.http().post('/orders').send({ id: 'o-1', amount: 4200 }).expect(201);
    expect(res.body).toEqual({ id: 'o-1', duplicate: false });
    await waitFor(app.drained);

    expect(await app.payments()).toEqual([{ id: 1, order: 'o-1', amount: 4200, charge: 'ch_o-1' }]);
    expect(app.charges).toEqual(['o-1']);
    expect(await app.confirmations()).toEqual([{ id: 1, order: 'o-1', text: 'Thank you for order o-1 (4200).' }]);
    expect({ errors: app.logger.errors, warnings: app.logger.warnings }).toEqual({ errors: [], warnings: [] });
  });

  it('answers the same POST again as a duplicate, and makes no second order or payment', async () => {
    const app = await start();
    await app.http().post('/orders').send({ id: 'o-2', amount: 500 }).expect(201);
    // A client that did not hear the answer sends again, before and after the payment was made.
    const again = await app.http().post('/orders').send({ id: 'o-2', amount: 500 }).expect(200);
    await waitFor(app.drained);
    const late = await app.http().post('/orders').send({ id: 'o-2', amount: 500 }).expect(200);
    await new Promise((r) => setTimeout(r, 300)); // time for a wrongly stored copy to be consumed

    expect([again.body, late.body]).toEqual([
      { id: 'o-2', duplicate: true },
      { id: 'o-2', duplicate: true },
    ]);
    expect((await app.payments()).map((p) => p.order)).toEqual(['o-2']);
    expect(app.charges).toEqual(['o-2']);
    expect(await app.drained()).toBe(true);
  });

  it('makes no second payment for a message redelivered after its lease expired mid-payment', async () => {
    // Two replicas of the app on one database, as two machines would run it.
    const database = freshDatabase();
    const replicas = [await start({ config: { database, leaseMs: 300 } }), await start({ config: { database, leaseMs: 300 } })];
    const calls = () => replicas.flatMap((r) => r.charges);
    let stalled: App | undefined;
    for (const replica of replicas) {
      const charge = replica.gateway.charge;
      replica.gateway.charge = async (req) => {
        // The first attempt stalls past its lease, until the other replica has been handed the order and paid it.
        if (!stalled) {
          stalled = replica;
          // Read straight from the file: a request made from inside the handler would run in its transaction.
          await waitFor(() => paymentRows(database) === 1);
        }
        return charge(req);
      };
    }
    await replicas[0]!.http().post('/orders').send({ id: 'o-3', amount: 700 }).expect(201);
    await waitFor(() => calls().length === 2 && replicas[1]!.logger.warnings.length > 0);

    // At least two deliveries (a busy database may make a transaction run again), each charging with the same idempotency key.
    expect(calls().length).toBeGreaterThanOrEqual(2);
    expect(new Set(calls())).toEqual(new Set(['o-3']));
    expect((await replicas[0]!.payments()).map((p) => p.order)).toEqual(['o-3']);
    // Nest's Logger is global: both replicas log to the logger set last.
    expect(replicas[1]!.logger.warnings).toContainEqual(expect.stringContaining('The lease on message o-3 of topic "orders" expired before it was settled'));
    expect((await replicas[1]!.http().get('/payments/failed').expect(200)).body).toEqual([]);
  });

  it('makes no second payment when the ack of a committed payment is lost', async () => {
    const app = await start({ faults: { lostConsumeAckRate: 1 } });
    const orders = ['o-4', 'o-5', 'o-6', 'o-7'];
    await Promise.all(orders.map((id) => app.http().post('/orders').send({ id, amount: 100 }).expect(201)));
    await waitFor(app.drained);

    expect((await app.payments()).map((p) => p.order).sort()).toEqual(orders);
    expect((await app.http().get('/payments/failed').expect(200)).body).toEqual([]);
    // Every commit "failed" after it was made: Tidings says so, finds the orders consumed, and pays none twice.
    expect(app.logger.warnings.length).toBeGreaterThan(0);
    expect(app.logger.warnings.every((w) => w.includes('its ack was lost'))).toBe(true);
    expect(app.charges.sort()).toEqual(orders);
  });

  it('retries a payment that always fails, dead-letters it, logs why, and keeps the reason', async () => {
    const app = await start();
    await app.http().post('/orders').send({ id: 'o-big', amount: 250_000 }).expect(201);
    await waitFor(async () => (await app.http().get('/payments/failed')).body.length === 1);

    const reason = 'Error: card declined: 250000 is over the limit of 100000';
    expect((await app.http().get('/payments/failed').expect(200)).body).toEqual([{ order: 'o-big', attempts: 3, error: reason }]);
    expect(app.charges).toEqual(['o-big', 'o-big', 'o-big']);
    expect(await app.payments()).toEqual([]);
    // Each failed attempt is one line with its reason; the last names the dead-letter topic.
    expect(app.logger.warnings.filter((w) => w.startsWith('handler failed; redelivering') && w.includes(reason))).toHaveLength(2);
    // The dead-letter event fires as the message dies, and the line is logged once its batch is settled: sorted, as either may come first.
    expect([...app.logger.errors].sort()).toEqual([
      expect.stringMatching(/^handler failed 3 time\(s\); message dead-lettered to orders\.dead .*card declined/),
      'order o-big was not paid after 3 attempts; see GET /payments/failed',
    ]);
    // The copy on the dead-letter topic keeps the reason too, with its stack.
    const [copy] = await app.tidings.storage.peek({ topic: 'orders.dead', subscription: 'default', state: 'acked', limit: 10 });
    expect(copy?.lastError).toMatch(new RegExp(`^${reason}\\n\\s+at `));
  });

  it('confirms every order once on its own subscription, the declined one too, while its payment is retried and dead-lettered', async () => {
    const app = await start();
    await app.http().post('/orders').send({ id: 'o-9', amount: 900 }).expect(201);
    await app.http().post('/orders').send({ id: 'o-huge', amount: 300_000 }).expect(201);
    await waitFor(async () => (await app.http().get('/payments/failed')).body.length === 1 && (await app.confirmations()).length === 2);

    expect((await app.confirmations()).map((c) => c.order).sort()).toEqual(['o-9', 'o-huge']);
    expect((await app.payments()).map((p) => p.order)).toEqual(['o-9']);
    expect((await app.http().get('/payments/failed').expect(200)).body).toEqual([expect.objectContaining({ order: 'o-huge', attempts: 3 })]);
    // Each subscription has its own copies: the dead one is the payments subscription's; the confirmations were consumed.
    expect((await app.tidings.subscriptionCounts('orders')).orders).toEqual({ payments: { dead: 1 } });
  });

  it('refuses an order without an id or a positive amount, saying what it needs', async () => {
    const app = await start();
    const res = await app.http().post('/orders').send({ id: 'o-8', amount: -5 }).expect(400);
    expect(res.body.message).toBe('an order needs an id (a non-empty string of your choice) and an amount (a positive integer)');
    expect(await app.payments()).toEqual([]);
  });
});

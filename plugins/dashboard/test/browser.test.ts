import { existsSync, mkdirSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type Page } from 'playwright-core';
import { lifecycleTables, type Consumer, type Tidings } from '@tidings/core';
import { memoryStorage } from '@tidings/adapter-memory';
import { createDashboard, type Dashboard } from '@tidings/dashboard';
import { fill, fillSubscribed, instrumented, until } from './support.js';

/** Debian's chromium; no browser download works on the machines this runs on (see DESIGN.md). */
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = fileURLToPath(new URL('../../../test-results/', import.meta.url));
const hasBrowser = existsSync(CHROMIUM);

if (!hasBrowser) {
  const say = `No Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH): the dashboard's browser tests are skipped.`;
  if (process.env.REQUIRE_BROWSER === '1') {
    describe('the dashboard in a browser', () => {
      it('needs Chromium, since REQUIRE_BROWSER=1', () => {
        throw new Error(say);
      });
    });
  } else {
    console.warn(say);
  }
}

// The title says why when skipped, so the run's report shows it, not only a console line.
describe.skipIf(!hasBrowser)(
  hasBrowser ? 'the dashboard in headless Chromium' : `the dashboard in headless Chromium (skipped: no Chromium at ${CHROMIUM})`,
  () => {
    let browser: Browser;
    let tidings: Tidings<any>;
    let dashboard: Dashboard;
    let url: string;
    const consumers: Array<Pick<Consumer<any, any>, 'stop'>> = [];

    beforeAll(async () => {
      browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
      const made = await instrumented(memoryStorage());
      tidings = made.tidings;
      // One topic per lifecycle, each with something to show.
      const orders = tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1, deadLetter: 'orders.dead' });
      const clicks = tidings.topic<{ n: number }>('clicks', { semantic: 'at-most-once' });
      const payments = tidings.topic<{ n: number }>('payments', { semantic: 'exactly-once', scope: 'broker', leaseMs: 60_000 });
      const receipts = tidings.topic<{ n: number }>('receipts', { semantic: 'exactly-once' });
      await orders.sendMany(
        [1, 2].map((n) => ({ n })),
        { id: (p) => `order-${p.n}` },
      );
      const failing = orders.consume(
        async () => {
          throw new Error('card declined by the payment service');
        },
        { pollMs: 5 },
      );
      await until('two dead letters', async () => (await tidings.counts('orders')).orders?.dead === 2);
      await failing.stop();
      await orders.sendMany(
        [3, 4, 5].map((n) => ({ n })),
        { id: (p) => `order-${p.n}` },
      );
      await clicks.sendMany([{ n: 1 }, { n: 2 }]);
      // A slow handler keeps one payment leased, so the page has a lease in flight to show.
      await payments.sendMany(
        [1, 2, 3].map((n) => ({ n })),
        { id: (p) => `pay-${p.n}` },
      );
      consumers.push(
        payments.consume((_m, ctx) => new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve())), { pollMs: 5, batchSize: 1 }),
      );
      // Steady traffic through receipts, for the throughput and latency charts.
      consumers.push(receipts.consume(() => new Promise((r) => setTimeout(r, 2)), { pollMs: 5, concurrency: 4 }));
      let n = 0;
      const traffic = setInterval(() => void receipts.sendMany(Array.from({ length: 20 }, () => ({ n: n++ }))).catch(() => undefined), 100);
      consumers.push({ stop: async () => clearInterval(traffic) });
      dashboard = createDashboard({ tidings, metrics: made.metrics, title: 'Tidings: shop' });
      ({ url } = await dashboard.listen());
    });

    afterAll(async () => {
      await browser?.close();
      for (const c of consumers.reverse()) await c.stop({ graceMs: 0 });
      await dashboard?.close();
      await tidings?.close({ graceMs: 0 });
    });

    async function open(): Promise<Page> {
      const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
      await page.goto(url);
      await page.waitForSelector('section.topic[data-topic="orders"] g.node[data-state="acked"] .count text');
      expect(errors).toEqual([]);
      return page;
    }

    const badge = (page: Page, topic: string, state: string) => page.locator(`section.topic[data-topic="${topic}"] g.node[data-state="${state}"] .count text`);

    it("draws one diagram per topic, each with its lifecycle's states", async () => {
      const page = await open();
      const drawn = await page.$$eval('section.topic', (sections) =>
        sections.map((s) => ({
          topic: s.getAttribute('data-topic'),
          lifecycle: s.querySelector('svg.lifecycle')?.getAttribute('data-lifecycle'),
          states: [...s.querySelectorAll('svg.lifecycle g.node[data-state]')].map((g) => g.getAttribute('data-state')).sort(),
        })),
      );
      const expected = (lifecycle: keyof typeof lifecycleTables) => [...lifecycleTables[lifecycle].states].sort();
      expect(drawn).toEqual([
        { topic: 'clicks', lifecycle: 'at-most-once', states: expected('at-most-once') },
        { topic: 'orders', lifecycle: 'at-least-once', states: expected('at-least-once') },
        { topic: 'orders.dead', lifecycle: 'at-least-once', states: expected('at-least-once') },
        { topic: 'payments', lifecycle: 'exactly-once/broker', states: expected('exactly-once/broker') },
        { topic: 'receipts', lifecycle: 'exactly-once/end-to-end', states: expected('exactly-once/end-to-end') },
      ]);
      expect(await badge(page, 'orders', 'dead').textContent()).toBe('2');
      expect(await badge(page, 'clicks', 'stored').textContent()).toBe('2');
      await expect.poll(() => page.locator('section.topic[data-topic="payments"] .leases td.token').count()).toBeGreaterThan(0);
      await page.close();
    });

    it('changes the counts on the states within about a second of messages being sent', async () => {
      const page = await open();
      await expect.poll(() => badge(page, 'orders', 'acked').textContent()).toBe('3');
      await tidings.topic<{ n: number }>('orders', { semantic: 'at-least-once', maxDeliveries: 1, deadLetter: 'orders.dead' }).sendMany(
        [6, 7, 8, 9].map((n) => ({ n })),
        { id: (p) => `order-${p.n}` },
      );
      const sent = Date.now();
      await expect.poll(() => badge(page, 'orders', 'acked').textContent(), { timeout: 3_000, interval: 50 }).toBe('7');
      expect(Date.now() - sent).toBeLessThan(2_000);
      await page.close();
    });

    it('redrives a dead letter from its button, after which a consumer gets it', async () => {
      const page = await open();
      await page.locator('section.topic[data-topic="orders"] button[data-redrive-id="order-1"]').click();
      await expect.poll(() => page.locator('section.topic[data-topic="orders"] .dead .notice').textContent()).toBe('Redrove 1 message.');
      await expect.poll(() => badge(page, 'orders', 'dead').textContent()).toBe('1');
      const got: string[] = [];
      const consumer = tidings
        .topic('orders', { semantic: 'at-least-once', maxDeliveries: 1, deadLetter: 'orders.dead' })
        .consume((m) => void got.push(m.id), { pollMs: 5 });
      await until('order-1 to be delivered again', () => got.includes('order-1'));
      await consumer.stop();
      // Let a few seconds of traffic reach the charts before the picture is taken.
      await expect.poll(() => page.locator('section.topic[data-topic="receipts"] .throughput path').count(), { timeout: 5_000 }).toBe(2);
      await page.waitForTimeout(2_500);
      mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: `${ARTIFACTS}dashboard.png`, fullPage: true });
      // One topic's card alone, the picture README shows (docs/img/dashboard.png is a copy of one run's).
      await page.locator('section.topic[data-topic="orders"]').screenshot({ path: `${ARTIFACTS}dashboard-orders.png` });
      await page.close();
    });

    it('shows each subscription of a topic with its own counts on the machine, and redrives the dead letters of the one picked', async () => {
      await fillSubscribed(tidings);
      const page = await open();
      const card = page.locator('section.topic[data-topic="invoices"]');
      await card.locator('.subs button[data-subscription="email"]').waitFor();
      expect(await card.locator('h2 .lifecycle').textContent()).toBe('at-least-once · ordered by key (key)');
      const tab = (name: string) => card.locator(`.subs button[data-subscription="${name}"]`);
      expect(await card.locator('.subs button[role="tab"]').evaluateAll((tabs) => tabs.map((t) => t.getAttribute('data-subscription')))).toEqual([
        'audit',
        'billing',
        'email',
      ]);
      // Each tab sums up its own subscription's copies, whichever is picked.
      expect(await tab('billing').locator('small').textContent()).toBe('0 waiting · 0 leased · 1 dead');
      expect(await tab('email').locator('small').textContent()).toBe('3 waiting · 0 leased');
      // No default subscription: the first one is shown until another is picked.
      expect(await tab('audit').getAttribute('aria-selected')).toBe('true');
      expect([await badge(page, 'invoices', 'acked').textContent(), await badge(page, 'invoices', 'dead').textContent()]).toEqual(['0', '0']);

      await tab('email').click();
      await expect.poll(() => badge(page, 'invoices', 'acked').textContent()).toBe('3');
      expect(await badge(page, 'invoices', 'dead').textContent()).toBe('0');
      expect(await card.locator('.diagram .caption').textContent()).toBe('Copies per state in subscription email');
      expect(await card.locator('.dead h3').textContent()).toBe('Dead letters of email');
      expect(await card.locator('.dead button[data-redrive-id]').count()).toBe(0);

      await tab('billing').click();
      await expect.poll(() => badge(page, 'invoices', 'dead').textContent()).toBe('1');
      expect(await badge(page, 'invoices', 'acked').textContent()).toBe('0');
      expect([await tab('billing').getAttribute('aria-selected'), await tab('email').getAttribute('aria-selected')]).toEqual(['true', 'false']);
      // The pick holds through the next snapshots.
      await page.waitForTimeout(1_200);
      expect(await badge(page, 'invoices', 'dead').textContent()).toBe('1');
      mkdirSync(ARTIFACTS, { recursive: true });
      await card.screenshot({ path: `${ARTIFACTS}dashboard-subscriptions.png` });

      await card.locator('button[data-redrive-id="invoice-1"]').click();
      await expect.poll(() => card.locator('.dead .notice').textContent()).toBe('Redrove 1 message.');
      await expect.poll(() => badge(page, 'invoices', 'acked').textContent()).toBe('1');
      expect(await badge(page, 'invoices', 'dead').textContent()).toBe('0');
      expect(await tidings.subscriptionCounts('invoices')).toEqual({ invoices: { billing: { acked: 1 }, email: { acked: 3 } } });
      await page.close();
    });

    it('refuses a browser without the token when one is set, and lets it in with the token', async () => {
      const guarded = createDashboard({ tidings, token: 'browser-token-123' });
      try {
        const { url: guardedUrl } = await guarded.listen();
        const page = await browser.newPage();
        const refused = await page.goto(guardedUrl);
        expect(refused!.status()).toBe(401);
        expect(await page.locator('section.topic').count()).toBe(0);
        await page.fill('input[name="token"]', 'wrong-token');
        await page.click('button[type="submit"]');
        await expect.poll(() => page.locator('.failed').count()).toBe(1);
        await page.fill('input[name="token"]', 'browser-token-123');
        await page.click('button[type="submit"]');
        await page.waitForSelector('section.topic[data-topic="orders"] svg.lifecycle');
        expect(new URL(page.url()).pathname).toBe('/');
        await page.close();
      } finally {
        await guarded.close();
      }
    });
  },
);

/** Listens on a free loopback port, resolving to it. */
async function listening(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

describe.skipIf(!hasBrowser)('the dashboard against pages of other sites, in headless Chromium', () => {
  /** The attacker's name: this browser resolves it to this machine, as a rebinding DNS server makes it do. */
  const ATTACKER = 'attacker.test';
  let browser: Browser;
  let tidings: Tidings<any>;
  let dashboard: Dashboard;
  const servers: Server[] = [];
  let dashboardPort: number;
  let attackerPort: number;
  /** What the dashboard answered, as its server saw it, for what a page's response cannot show. */
  const answered: Array<{ method: string; path: string; host: string; status: number }> = [];
  const api = () => answered.filter((a) => a.path.startsWith('/api/')).map((a) => ({ ...a }));
  const deadOrders = async () => (await tidings.counts('orders')).orders?.dead ?? 0;

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: [...FLAGS, `--host-resolver-rules=MAP ${ATTACKER} 127.0.0.1`] });
    ({ tidings } = await instrumented(memoryStorage()));
    await fill(tidings);
    expect(await deadOrders()).toBe(2);
    dashboard = createDashboard({ tidings });
    const dashboardServer = createServer((req, res) => {
      res.on('finish', () => answered.push({ method: req.method!, path: req.url!, host: req.headers.host!, status: res.statusCode }));
      dashboard.handler(req, res);
    });
    servers.push(dashboardServer);
    dashboardPort = await listening(dashboardServer);
    // The attacker's server serves its page at /. Its name then points at this machine: Chromium's resolver rules are
    // fixed for its run, so every other request is passed on to the dashboard byte for byte, Host and Origin as the
    // browser wrote them, which is what the dashboard sees once the name's DNS answer changed.
    const attacker = createServer((req, res) => {
      if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        return void res.end('<!doctype html><title>Win a prize</title><p>Nothing to see here.</p>');
      }
      const upstream = request({ host: '127.0.0.1', port: dashboardPort, path: req.url, method: req.method, headers: req.headers }, (answer) => {
        res.writeHead(answer.statusCode!, answer.headers);
        answer.pipe(res);
      });
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    });
    servers.push(attacker);
    attackerPort = await listening(attacker);
  });

  afterAll(async () => {
    await browser?.close();
    await dashboard?.close();
    for (const server of servers) await new Promise((r) => server.close(r));
    await tidings?.close({ graceMs: 0 });
  });

  it('keeps a page that rebinds its name to this machine from reading the dead letters or redriving them', async () => {
    answered.length = 0;
    const before = await deadOrders();
    const page = await browser.newPage();
    const origin = `http://${ATTACKER}:${attackerPort}`;
    await page.goto(`${origin}/`);
    // Same-origin for the browser: no CORS stands in the way, the page reads whatever the dashboard answers.
    const got = await page.evaluate(async (origin) => {
      const read = await fetch(`${origin}/api/snapshot`);
      const redrive = await fetch(`${origin}/api/redrive`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'orders' }),
      });
      return { read: { status: read.status, body: await read.text() }, redrive: { status: redrive.status, body: await redrive.text() } };
    }, origin);
    expect(got.read.status).toBe(421);
    expect(JSON.parse(got.read.body).error.code).toBe('HOST_NOT_ALLOWED');
    expect(got.read.body).not.toContain('order-');
    expect([got.redrive.status, JSON.parse(got.redrive.body).error.code]).toEqual([421, 'HOST_NOT_ALLOWED']);
    expect(await deadOrders()).toBe(before);
    // The requests did reach the dashboard, addressed to the attacker's name (Chromium tries again once on a 421).
    const seen = api();
    expect(new Set(seen.map((a) => `${a.method} ${a.path} ${a.host} ${a.status}`))).toEqual(
      new Set([`GET /api/snapshot ${ATTACKER}:${attackerPort} 421`, `POST /api/redrive ${ATTACKER}:${attackerPort} 421`]),
    );
    await page.close();
  });

  it('refuses a redrive that a page of another origin posts without CORS, and redrives nothing', async () => {
    answered.length = 0;
    const before = await deadOrders();
    const page = await browser.newPage();
    await page.goto(`http://${ATTACKER}:${attackerPort}/`);
    const target = `http://127.0.0.1:${dashboardPort}/api/redrive`;
    // no-cors and text/plain: the browser sends it without a preflight, and the page never sees the answer.
    const type = await page.evaluate(
      async (target) =>
        (await fetch(target, { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ topic: 'orders' }) })).type,
      target,
    );
    expect(type).toBe('opaque');
    await until('the dashboard to answer the redrive', () => api().length > 0);
    // 403 from the Origin check, not the 415 that the content type alone would get.
    expect(api()).toEqual([{ method: 'POST', path: '/api/redrive', host: `127.0.0.1:${dashboardPort}`, status: 403 }]);
    expect(await deadOrders()).toBe(before);
    await page.close();
  });
});

import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import express from 'express';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Tidings } from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { sqliteStorage } from '@tidings/adapter-sqlite';
import { postgresStorage } from '@tidings/adapter-postgres';
import { createDashboard, type Dashboard } from '@tidings/dashboard';
import { freshPostgresDatabase } from '../../../test/support/databases.js';
import { instrumented, until } from './support.js';

/** Debian's chromium, launched as browser.test.ts does. */
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
const hasBrowser = existsSync(CHROMIUM);
/** Pictures of the SQLite run, shown in README.md; other runs' go to test-results/. */
const DOCS = fileURLToPath(new URL('../../../docs/img/', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../../test-results/', import.meta.url));

interface Database {
  name: 'SQLite' | 'PostgreSQL';
  /** A new storage on the same database each call, as another process would open it. */
  open(): StorageAdapter<any>;
}

async function sqlite(): Promise<Database & { cleanup(): void }> {
  const dir = mkdtempSync(join(tmpdir(), 'tidings-console-'));
  const file = join(dir, 'tidings.db');
  return { name: 'SQLite', open: () => sqliteStorage({ file }), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

async function postgres(): Promise<Database & { cleanup(): void }> {
  const url = await freshPostgresDatabase('dashboard_console');
  return { name: 'PostgreSQL', open: () => postgresStorage({ url }), cleanup: () => undefined };
}

const ORDERS = { semantic: 'at-least-once', maxDeliveries: 1, deadLetter: 'orders.dead' } as const;

/**
 * What an operator finds: `orders` with two dead letters (payment refused, with a stack), 30 waiting orders keyed by
 * customer with headers, one delayed; `shipments` empty, for pausing with a consumer running.
 */
async function seed(tidings: Tidings<any>): Promise<void> {
  const orders = tidings.topic<{ n: number }>('orders', ORDERS);
  tidings.topic<{ n: number }>('shipments', { semantic: 'at-least-once' });
  await orders.sendMany([{ n: 1 }, { n: 2 }], { id: (p) => `order-${p.n}`, key: () => 'customer-1' });
  const failing = orders.consume(
    async () => {
      throw new Error('payment service refused: card declined\n    at charge (payments.ts:12:7)\n    at handle (orders.ts:40:3)');
    },
    { pollMs: 5 },
  );
  await until('two dead letters', async () => (await tidings.counts('orders')).orders?.dead === 2);
  await failing.stop();
  await orders.sendMany(
    Array.from({ length: 30 }, (_, i) => ({ n: 100 + i })),
    { id: (p) => `order-${p.n}`, key: (p) => `customer-${p.n % 4}`, headers: { tenant: 'acme', 'x-request-id': 'req-7f3a' } },
  );
  await orders.send({ n: 999 }, { id: 'order-later', delayMs: 3_600_000 });
}

async function listening(server: Server): Promise<string> {
  if (!server.listening) await new Promise((r) => server.once('listening', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe.skipIf(!hasBrowser).each([
  ['SQLite', sqlite],
  ['PostgreSQL', postgres],
] as const)('the operator console on %s, in headless Chromium', (name, make) => {
  let browser: Browser;
  let db: Database & { cleanup(): void };
  let tidings: Tidings<any>;
  let mounted: Dashboard;
  let server: Server;
  let base: string;
  // The README's pictures are redrawn only when asked (UPDATE_SCREENSHOTS=1): a test run leaves the tree as it found it.
  const pictures = name === 'SQLite' && process.env.UPDATE_SCREENSHOTS === '1' ? DOCS : ARTIFACTS;
  const shot = (file: string) => `${pictures}${name === 'SQLite' ? '' : 'postgres-'}${file}`;

  beforeAll(async () => {
    mkdirSync(pictures, { recursive: true });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS });
    db = await make();
    const made = await instrumented(db.open());
    tidings = made.tidings;
    await seed(tidings);
    // Mounted in an application, the way an app serves it: under a path, beside its own routes and body parser.
    mounted = createDashboard({ tidings, metrics: made.metrics, title: 'Tidings: shop' });
    const app = express();
    app.use(express.json());
    app.use('/ops', mounted.handler);
    server = app.listen(0, '127.0.0.1');
    base = `${await listening(server)}/ops/`;
  });

  afterAll(async () => {
    await browser?.close();
    await mounted?.close();
    await new Promise((r) => server?.close(r));
    await tidings?.close({ graceMs: 0 });
    db?.cleanup();
  });

  async function open(url: string, width = 1280, height = 900): Promise<Page> {
    const page = await browser.newPage({ viewport: { width, height } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(url);
    await page.locator('table.overview tr[data-topic="orders"]').waitFor({ state: 'attached' });
    expect(errors).toEqual([]);
    return page;
  }

  const row = (page: Page, topic: string) => page.locator(`table.overview tr[data-topic="${topic}"]`);
  const cell = (page: Page, topic: string, key: string) => row(page, topic).locator(`td[data-key="${key}"]`);
  const rows = (page: Page) => page.locator('table.messages tbody tr[data-id]');
  const ids = (page: Page) => rows(page).evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));
  const notice = (page: Page) => page.locator('#act-notice');
  const confirmWith = async (page: Page, text: RegExp) => {
    const dialog = page.locator('dialog#confirm');
    await dialog.waitFor();
    expect(await dialog.locator('p').textContent()).toMatch(text);
    await dialog.locator('button[value="ok"]').click();
  };

  it('shows every topic and subscription in one sortable table, dead-letter topics linked to their source', async () => {
    const page = await open(base);
    expect(await cell(page, 'orders', 'waiting').textContent()).toBe('31');
    expect(await cell(page, 'orders', 'dead').textContent()).toBe('2');
    expect(await cell(page, 'orders', 'lifecycle').textContent()).toBe('at-least-once');
    await expect.poll(() => cell(page, 'orders', 'oldest').textContent()).toMatch(/^\d+ s$/);
    expect(await cell(page, 'orders.dead', 'waiting').textContent()).toBe('2');
    expect(await row(page, 'orders.dead').locator('a[data-link="source"]').getAttribute('href')).toBe('#/topic/orders/default');
    expect(await page.locator('#overview-at').textContent()).toMatch(/^as of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d/);
    const order = () => page.locator('table.overview tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-topic')));
    expect(await order()).toEqual(['orders', 'orders.dead', 'shipments']);
    // Sorted by waiting, most first.
    await page.locator('table.overview th[data-key="waiting"] button').click();
    await page.locator('table.overview th[data-key="waiting"] button').click();
    expect(await page.locator('table.overview th[data-key="waiting"]').getAttribute('aria-sort')).toBe('descending');
    expect(await order()).toEqual(['orders', 'orders.dead', 'shipments']);
    await page.locator('table.overview th[data-key="waiting"] button').click();
    expect(await order()).toEqual(['shipments', 'orders.dead', 'orders']);
    await page.locator('table.overview th[data-key="topic"] button').click();
    await page.waitForTimeout(1_200);
    await page.screenshot({ path: shot('dashboard-overview.png') });
    await page.close();
  });

  it('browses waiting messages page by page, the delayed one apart, and finds messages by id and by key', async () => {
    const page = await open(base);
    await row(page, 'orders').locator('a[data-link="subscription"]').click();
    await expect.poll(() => page.locator('#subscription h2 .name').textContent()).toBe('orders / default');
    await expect.poll(() => rows(page).count()).toBe(25);
    expect((await ids(page)).slice(0, 2)).toEqual(['order-100', 'order-101']);
    expect(await page.locator('#page-info').textContent()).toBe('Page 1 · 25 messages');
    if (name === 'SQLite') await page.screenshot({ path: shot('dashboard-browser.png') });
    await page.locator('#next').click();
    await expect.poll(() => ids(page)).toEqual(['order-125', 'order-126', 'order-127', 'order-128', 'order-129']);
    expect(await page.locator('#next').isDisabled()).toBe(true);
    await page.locator('#prev').click();
    await expect.poll(() => rows(page).count()).toBe(25);

    await page.locator('[role="tab"][data-view="delayed"]').click();
    await expect.poll(() => ids(page)).toEqual(['order-later']);
    await page.locator('[role="tab"][data-view="dead"]').click();
    await expect.poll(async () => (await ids(page)).sort()).toEqual(['order-1', 'order-2']);
    expect(await page.locator('table.messages tr[data-id="order-1"] td.error').textContent()).toBe('Error: payment service refused: card declined');

    await page.fill('#search-value', 'order-2');
    await page.press('#search-value', 'Enter');
    await expect.poll(() => ids(page)).toEqual(['order-2']);
    await page.selectOption('#search-by', 'key');
    await page.fill('#search-value', 'customer-3');
    await page.locator('form.search button[type="submit"]').click();
    await expect.poll(() => ids(page)).toEqual(['order-103', 'order-107', 'order-111', 'order-115', 'order-119', 'order-123', 'order-127']);
    await page.locator('#search-clear').click();
    await expect.poll(() => rows(page).count()).toBe(2);
    await page.close();
  });

  it("shows one message's payload, headers, deliveries and dates, and its last error with the stack folded", async () => {
    const page = await open(`${base}#/topic/orders/default`);
    await page.locator('[role="tab"][data-view="dead"]').click();
    await page.locator('table.messages tr[data-id="order-1"] a').click();
    await page.locator('#message pre[data-part="payload"]').waitFor();
    expect(await page.locator('#message pre[data-part="payload"]').textContent()).toBe('{\n  "n": 1\n}');
    expect(await page.locator('#message dd[data-field="state"]').textContent()).toBe('dead');
    expect(await page.locator('#message dd[data-field="deliveries"]').textContent()).toBe('1');
    expect(await page.locator('#message dd[data-field="key"]').textContent()).toBe('customer-1');
    expect(await page.locator('#message dd[data-field="created"]').textContent()).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$/);
    expect(await page.locator('#message .error-line').textContent()).toBe('Error: payment service refused: card declined');
    const stack = page.locator('#message details pre');
    expect(await stack.isVisible()).toBe(false);
    await page.locator('#message details summary').click();
    expect(await stack.textContent()).toContain('at charge (payments.ts:12:7)');

    await page.goto(`${base}#/message/orders/default/order-100`);
    await expect.poll(() => page.locator('#message pre[data-part="headers"]').textContent()).toBe('{\n  "tenant": "acme",\n  "x-request-id": "req-7f3a"\n}');
    await page.goto(`${base}#/message/orders/default/order-1`);
    await page.locator('#message details summary').click();
    if (name === 'SQLite') await page.screenshot({ path: shot('dashboard-message.png'), fullPage: true });
    await page.close();
  });

  it('retries a delayed message now, discards a dead letter and empties the queue, each destructive act confirmed with its count', async () => {
    const page = await open(`${base}#/topic/orders/default`);
    await page.locator('[role="tab"][data-view="delayed"]').click();
    await expect.poll(() => ids(page)).toEqual(['order-later']);
    await rows(page).first().locator('button[data-act="retry-now"]').click();
    await expect.poll(() => notice(page).textContent()).toBe('Made 1 message due now.');
    await expect.poll(() => rows(page).count()).toBe(0);

    await page.locator('[role="tab"][data-view="dead"]').click();
    await expect.poll(async () => (await ids(page)).sort()).toEqual(['order-1', 'order-2']);
    await page.locator('table.messages tr[data-id="order-2"] button[data-act="discard"]').click();
    await confirmWith(page, /^Discard dead letter order-2 of orders\/default\? It is dropped for good\.$/);
    await expect.poll(() => notice(page).textContent()).toBe('Discarded 1 dead letter.');
    await expect.poll(() => ids(page)).toEqual(['order-1']);

    // Cancelling leaves everything as it was.
    await page.locator('#empty-btn').click();
    await page.locator('dialog#confirm button[value="cancel"]').click();
    expect((await tidings.counts('orders')).orders).toMatchObject({ acked: 31 });
    await expect.poll(() => page.locator('#empty-btn').textContent()).toBe('Empty (31)…');
    await page.locator('#empty-btn').click();
    await confirmWith(page, /drops its 31 waiting and delayed messages for good/);
    await expect.poll(() => notice(page).textContent()).toBe('Emptied 31 waiting or delayed messages.');
    expect((await tidings.counts('orders')).orders).toEqual({ dead: 1 });
    await expect.poll(() => page.locator('#empty-btn').isDisabled()).toBe(true);
    await page.close();
  });

  it('pauses a subscription from its page, so that a consumer stops leasing and says so, and resumes it', async () => {
    const shipments = tidings.topic<{ n: number }>('shipments', { semantic: 'at-least-once' });
    const got: string[] = [];
    const consumer = shipments.consume((m) => void got.push(m.id), { pollMs: 5 });
    try {
      const page = await open(`${base}#/topic/shipments/default`);
      await expect.poll(() => page.locator('#pause').textContent()).toBe('Pause');
      expect(await page.locator('#run-state').textContent()).toBe('Running');
      await page.locator('#pause').click();
      await expect.poll(() => page.locator('#pause').textContent()).toBe('Resume');
      expect(await page.locator('#run-state').textContent()).toMatch(/^Paused since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
      await until('the consumer to say it is paused', () => consumer.state === 'paused', 1_000);
      await shipments.send({ n: 1 }, { id: 'ship-1' });
      await new Promise((r) => setTimeout(r, 700));
      expect(got).toEqual([]);
      await page.goto(base);
      await expect.poll(() => cell(page, 'shipments', 'paused').textContent()).toMatch(/^since \d{4}-/);
      await page.goto(`${base}#/topic/shipments/default`);
      await page.locator('#pause[data-paused="true"]').click();
      await expect.poll(() => page.locator('#pause').textContent()).toBe('Pause');
      await until('ship-1 to be consumed once resumed', () => got.includes('ship-1'));
      await page.close();
    } finally {
      await consumer.stop();
    }
  });

  it('runs standalone on the same database, deriving rates from counts and acting through the records', async () => {
    // Opened as `tidings dashboard --db` opens it: no Tidings instance in this dashboard's reach.
    const storage = db.open();
    await storage.open?.();
    const standalone = createDashboard({ storage });
    try {
      const { url } = await standalone.listen();
      const page = await open(url);
      expect(await page.locator('#rates-note').textContent()).toMatch(/^Standalone: no events reach this page, so rates are derived from the change of counts/);
      await page.goto(`${url}#/topic/orders/default`);
      await page.locator('[role="tab"][data-view="dead"]').click();
      await expect.poll(() => ids(page)).toEqual(['order-1']);
      await rows(page).first().locator('button[data-act="redrive"]').click();
      await expect.poll(() => notice(page).textContent()).toBe('Redrove 1 message.');
      await expect.poll(async () => (await tidings.counts('orders')).orders).toEqual({ acked: 1 });
      await page.close();
    } finally {
      await standalone.close();
      await storage.close();
    }
  });

  it.runIf(name === 'SQLite')('is reachable by keyboard and readable on a phone-width window', async () => {
    const page = await open(base);
    // Tab from the top of the page to the shipments row's link, and follow it with Enter.
    let focused = '';
    for (let i = 0; i < 60 && focused !== 'shipments/subscription'; i++) {
      await page.keyboard.press('Tab');
      focused = await page.evaluate(() => {
        const a = (globalThis as any).document.activeElement;
        return a?.dataset.link ? `${a.closest('tr')?.getAttribute('data-topic')}/${a.dataset.link}` : '';
      });
    }
    expect(focused).toBe('shipments/subscription');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.evaluate(() => (globalThis as any).location.hash)).toBe('#/topic/shipments/default');
    for (let i = 0; i < 20 && (await page.evaluate(() => (globalThis as any).document.activeElement?.id)) !== 'pause'; i++) await page.keyboard.press('Tab');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('pause');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#pause').textContent()).toBe('Resume');
    await page.keyboard.press('Enter');
    await expect.poll(() => page.locator('#pause').textContent()).toBe('Pause');

    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(base);
    // Nothing but the overview's own scroller is wider than the window.
    const wide = await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth);
    expect(wide).toBeLessThanOrEqual(390);
    await page.waitForTimeout(1_200);
    await page.screenshot({ path: shot('dashboard-phone.png') });
    await page.goto(`${base}#/message/orders/default/order-1`);
    await page.locator('#message pre[data-part="payload"]').waitFor();
    expect(await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await page.screenshot({ path: shot('dashboard-phone-message.png'), fullPage: true });
    await page.close();
  });
});

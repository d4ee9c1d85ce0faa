import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import {
  DEFAULT_SUBSCRIPTION,
  InvalidOptionsError,
  LIFECYCLES,
  Tokens,
  TidingsError,
  lifecyclePlans,
  recordedLedger,
  type Lifecycle,
  type StorageAdapter,
  type Tidings,
  type TopicRecord,
} from '@tidings/core';
import { metricsPlugin, type MetricsPlugin } from '@tidings/metrics';
import { Gate, encrypted, isLoopback, queryTokenAllowed } from './auth.js';
import { lifecycleSvg } from './diagrams.js';
import { DashboardListenError, DashboardRequestError, DashboardTokenRequiredError, InvalidPortError } from './errors.js';
import { Monitor, type Snapshot } from './monitor.js';
import { AllowedHosts, checkHost, checkOrigin, parseHost } from './origin.js';
import { dashboardPage, loginPage } from './page.js';

/** Options of `createDashboard`: a Tidings instance in this process, or a storage other processes write to. */
export interface DashboardOptions {
  /** The instance to watch in-process: counts from its storage, throughput and transitions from its events. */
  tidings?: Tidings<any>;
  /** A storage to watch on its own (e.g. a database other processes use); ignored when `tidings` is given. */
  storage?: StorageAdapter<any>;
  /**
   * The metrics plugin given to `Tidings.create({ plugins })`: served at `/metrics`, and the source of end-to-end
   * latency (its handle hook). Without it the dashboard makes its own, which sees events but times no handler.
   */
  metrics?: MetricsPlugin;
  /** Required to listen beyond loopback; then every request needs it (Bearer header, login cookie, or `?token=` locally). */
  token?: string;
  /**
   * Host names the dashboard answers to besides loopback names (`localhost`, `*.localhost`) and IP addresses: exact
   * (`'dash.example.com'`), or `'.example.com'` for that domain and its subdomains; `listen({ host })` adds its own.
   * Any other Host header is refused (421 `HOST_NOT_ALLOWED`), so that a web page cannot reach the dashboard through
   * a name it points at this machine (DNS rebinding). `true` answers every Host: only behind a proxy that checks it.
   */
  allowedHosts?: readonly string[] | true;
  /** The page's title (default `Tidings`). */
  title?: string;
}

/** A Node/Express/Nest request handler: answers the dashboard's paths, passes anything else to `next` (404 without it). */
export type DashboardHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

/** Where `listen` put the dashboard. */
export interface Listening {
  url: string;
  host: string;
  port: number;
}

/** A dashboard: mount `handler` in an app, or `listen` on its own; `close` stops both. */
export interface Dashboard {
  readonly handler: DashboardHandler;
  /** Serves the dashboard on its own HTTP server (default host `127.0.0.1`, port `0`: any free one). */
  listen(options?: { port?: number; host?: string }): Promise<Listening>;
  /** Stops sampling, ends live pages and closes servers `listen` opened; leaves the Tidings instance and storage open. */
  close(): Promise<void>;
}

/** Largest redrive request body read: a few thousand ids. */
const MAX_BODY = 256 * 1024;
const MAX_IDS = 1000;

/** A live dashboard of a Tidings instance or storage: lifecycle diagrams with counts, throughput, latency, dead letters, leases. */
export function createDashboard(options: DashboardOptions): Dashboard {
  const { tidings } = options;
  const storage = tidings?.storage ?? options.storage;
  if (!storage) throw new InvalidOptionsError('createDashboard needs { tidings } (an instance in this process) or { storage } (a database to watch).');
  if (options.token !== undefined && (typeof options.token !== 'string' || options.token.length < 8)) {
    throw new InvalidOptionsError('The dashboard token must be a string of at least 8 characters, e.g. from `openssl rand -hex 16`.');
  }
  const title = options.title ?? 'Tidings';
  const ownMetrics = options.metrics ? undefined : metricsPlugin(tidings ? {} : { storage });
  const metrics = options.metrics ?? ownMetrics!;
  // A plugin made here is not among the instance's plugins: it sees events but no handler runs through it.
  if (ownMetrics && tidings) ownMetrics.setup(tidings);
  const now = tidings ? () => tidings.container.resolve(Tokens.Clock).now() : () => Date.now();
  const monitor = new Monitor({ tidings, storage, metrics, now, hooked: tidings !== undefined && options.metrics !== undefined });
  const gate = new Gate(options.token);
  const hosts = new AllowedHosts(options.allowedHosts);
  const streams = new Set<ServerResponse>();
  const servers = new Set<Server>();
  let closed = false;
  monitor.start();

  /**
   * The subscription a redrive names, which the topic must have, or its default one; refused when the topic has
   * subscriptions and none is `default`, since the page cannot guess which one's dead letters were meant.
   */
  const subscriptionOf = async (topic: string, named: string | undefined): Promise<{ name: string; maxDeliveries?: number }> => {
    const [records, copies] = await Promise.all([storage.subscriptions(topic), storage.counts(topic)]);
    const known = [...new Set([...records.map((s) => s.name), ...Object.keys(copies[topic] ?? {})])].sort();
    const name = named ?? DEFAULT_SUBSCRIPTION;
    if (known.includes(name) || (named === undefined && known.length === 0)) return { name, maxDeliveries: records.find((s) => s.name === name)?.maxDeliveries };
    const list = known.join(', ');
    if (named === undefined) {
      throw new DashboardRequestError(400, 'SUBSCRIPTION_REQUIRED', `Topic "${topic}" has no default subscription: name one of ${list}, e.g. {"topic": "${topic}", "subscription": "${known[0]}"}.`);
    }
    throw new DashboardRequestError(404, 'UNKNOWN_SUBSCRIPTION', `Topic "${topic}" has no subscription "${name}"${known.length === 0 ? '' : `; its subscriptions are ${list}`}.`);
  };

  /**
   * Redrives one subscription's dead letters: through the instance when it declared the topic, so that its consumers
   * of the subscription wake at once; otherwise through a ledger built from the records, whose transitions still go
   * on the instance's bus when there is one, for its metrics and live page.
   */
  const redriver = (record: TopicRecord, subscription: string, maxDeliveries: number): ((ids?: string[]) => Promise<number>) => {
    const at = now();
    const ledger = recordedLedger(storage, record, { name: subscription, maxDeliveries }, { clock: { now: () => at }, events: tidings?.events });
    const recorded = async (ids?: string[]) => (await ledger.redrive(ids)).length;
    let instance = tidings;
    return async (ids) => {
      if (!instance) return recorded(ids);
      try {
        return await instance.redrive(record.name, ids, { subscription });
      } catch (error) {
        // Only this refusal, made before anything moves, tells whether the instance declared the topic.
        if (!(error instanceof InvalidOptionsError)) throw error;
        instance = undefined;
        return recorded(ids);
      }
    };
  };

  const api = {
    async page(res: ServerResponse): Promise<void> {
      const diagrams = await Promise.all(LIFECYCLES.map(async (l): Promise<[Lifecycle, string]> => [l, await lifecycleSvg(l)]));
      send(res, 200, 'text/html; charset=utf-8', dashboardPage({ title, mode: monitor.mode, latency: tidings !== undefined && options.metrics !== undefined, diagrams }));
    },

    events(req: IncomingMessage, res: ServerResponse): void {
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      res.write('retry: 1000\n\n');
      streams.add(res);
      const unsubscribe = monitor.subscribe((s: Snapshot) => res.write(`data: ${JSON.stringify(s)}\n\n`));
      const end = () => {
        unsubscribe();
        streams.delete(res);
      };
      req.on('close', end);
      res.on('close', end);
    },

    async redrive(req: IncomingMessage, res: ServerResponse): Promise<void> {
      const type = String(req.headers['content-type'] ?? '');
      // JSON only: a cross-site form cannot send it without a preflight, so the login cookie cannot be ridden.
      if (!/^application\/json\b/i.test(type)) {
        throw new DashboardRequestError(415, 'UNSUPPORTED_MEDIA_TYPE', 'Send the redrive request as JSON (Content-Type: application/json): {"topic": "orders", "subscription": "billing", "ids": ["order-42"]}.');
      }
      const body = await readJson(req);
      if (typeof body !== 'object' || body === null || Array.isArray(body)) {
        throw new DashboardRequestError(400, 'INVALID_REQUEST', 'The body must be a JSON object: {"topic": "orders"} for all dead letters of its default subscription, with "subscription": "billing" for another one, and "ids": ["order-42"] for some of them.');
      }
      const { topic, subscription: named, ids } = body as { topic?: unknown; subscription?: unknown; ids?: unknown };
      if (typeof topic !== 'string' || topic === '') throw new DashboardRequestError(400, 'INVALID_REQUEST', '"topic" must name a topic, e.g. {"topic": "orders"}.');
      if (named !== undefined && (typeof named !== 'string' || named === '')) {
        throw new DashboardRequestError(400, 'INVALID_REQUEST', `"subscription", when given, must name a subscription of the topic, e.g. {"topic": "${topic}", "subscription": "billing"}; leave it out for the default one.`);
      }
      if (ids !== undefined && (!Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS || ids.some((id) => typeof id !== 'string' || id === ''))) {
        throw new DashboardRequestError(400, 'INVALID_REQUEST', `"ids", when given, must be a list of 1 to ${MAX_IDS} message ids (strings); leave it out to redrive every dead letter of the subscription.`);
      }
      const record = (await storage.topics()).find((t) => t.name === topic);
      if (!record) throw new DashboardRequestError(404, 'UNKNOWN_TOPIC', `Topic "${topic}" is not recorded in this storage: check the name.`);
      const plan = lifecyclePlans[record.lifecycle];
      if (plan.steps.redrive.length === 0) {
        throw new DashboardRequestError(409, 'NOT_REDRIVABLE', `Topic "${topic}" is ${record.lifecycle}: its messages are never dead-lettered, so there is nothing to redrive.`);
      }
      const subscription = await subscriptionOf(topic, named);
      const move = redriver(record, subscription.name, subscription.maxDeliveries ?? record.maxDeliveries);
      let redriven = 0;
      const missing: string[] = [];
      if (ids) {
        // One id at a time, so the answer can name each id that was not a dead letter.
        for (const id of new Set(ids as string[])) {
          const n = await move([id]);
          if (n === 0) missing.push(id);
          redriven += n;
        }
      } else {
        redriven = await move();
      }
      json(res, 200, { topic, subscription: subscription.name, state: plan.ready, redriven, missing });
      void monitor.refresh();
    },

    async login(req: IncomingMessage, res: ServerResponse, base: string): Promise<void> {
      const form = new URLSearchParams(await readText(req));
      if (!gate.matches(form.get('token') ?? '')) {
        send(res, 401, 'text/html; charset=utf-8', loginPage({ title, failed: true }));
        return;
      }
      res.setHeader('set-cookie', gate.cookie(`${base}/`, encrypted(req)));
      redirect(res, `${base}/`);
    },
  };

  async function route(req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const path = url.pathname;
    // Express strips the mount path from req.url and keeps it in req.baseUrl: links and the cookie need it back.
    const base = ((req as { baseUrl?: string }).baseUrl ?? '').replace(/\/$/, '');
    const method = req.method ?? 'GET';
    const known = ['/', '/events', '/metrics', '/api/snapshot', '/api/redrive', '/login'].includes(path);
    if (!known && next) return next();
    // Before anything else, sign-in page included: a request under a name the dashboard does not answer to may come
    // from a page that pointed its own name at this machine, and the browser would show that page every answer.
    checkHost(req, hosts);
    if (method !== 'GET' && method !== 'HEAD') checkOrigin(req, hosts, `${method} ${base}${path}`);
    if (!known) throw new DashboardRequestError(404, 'NOT_FOUND', `No such dashboard page: ${path}. The dashboard is at ${base}/.`);
    if (closed) throw new DashboardRequestError(503, 'CLOSED', 'The dashboard is closed.');
    const wantsPage = method === 'GET' && path === '/';
    if (wantsPage && base !== '' && !((req as { originalUrl?: string }).originalUrl ?? '').split('?')[0]!.endsWith('/')) {
      // The page's links are relative: /tidings must become /tidings/ or they would point beside the mount.
      return redirect(res, `${base}/${url.search}`);
    }
    const queryToken = url.searchParams.get('token');
    if (queryToken !== null && gate.enabled) {
      if (!queryTokenAllowed(req)) {
        throw new DashboardRequestError(
          403,
          'TOKEN_IN_URL_REFUSED',
          'A token in the URL over plain HTTP from another machine is refused: it could be read on the way and ends up in logs. Send it as "Authorization: Bearer <token>", or sign in through the form.',
        );
      }
      if (!gate.matches(queryToken)) return unauthorized(req, res, true);
      // Trade the token for the cookie, and take it out of the address bar and history.
      res.setHeader('set-cookie', gate.cookie(`${base}/`, encrypted(req)));
      url.searchParams.delete('token');
      return redirect(res, `${base}${path}${url.search}`);
    }
    if (method === 'POST' && path === '/login') return api.login(req, res, base);
    if (!gate.allows(req)) return unauthorized(req, res, false);
    if (method === 'GET' && path === '/') return api.page(res);
    if (method === 'GET' && path === '/events') return api.events(req, res);
    if (method === 'GET' && path === '/api/snapshot') return json(res, 200, await monitor.snapshot());
    if (method === 'GET' && path === '/metrics') return send(res, 200, metrics.registry.contentType, await metrics.registry.metrics());
    if (method === 'POST' && path === '/api/redrive') return api.redrive(req, res);
    res.setHeader('allow', path === '/api/redrive' || path === '/login' ? 'POST' : 'GET');
    throw new DashboardRequestError(405, 'METHOD_NOT_ALLOWED', `${method} ${path} is not supported here.`);
  }

  function unauthorized(req: IncomingMessage, res: ServerResponse, failed: boolean): void {
    res.setHeader('www-authenticate', 'Bearer realm="tidings-dashboard"');
    if (req.method === 'GET' && /text\/html/.test(String(req.headers.accept ?? ''))) {
      send(res, 401, 'text/html; charset=utf-8', loginPage({ title, failed }));
    } else {
      json(res, 401, { error: { code: 'UNAUTHORIZED', message: 'This dashboard needs its token: send "Authorization: Bearer <token>", or sign in on its page.' } });
    }
  }

  const handler: DashboardHandler = (req, res, next) => {
    route(req, res, next).catch((error: unknown) => {
      // Every failure is an answer, never a crash of the application the dashboard is mounted in.
      if (res.headersSent) return void res.end();
      if (error instanceof DashboardRequestError) return json(res, error.status, { error: { code: error.code, message: error.message } });
      const code = error instanceof TidingsError ? error.code : 'INTERNAL';
      json(res, error instanceof TidingsError ? 503 : 500, { error: { code, message: (error as Error)?.message ?? String(error) } });
    });
  };

  return {
    handler,
    async listen({ port = 0, host = '127.0.0.1' } = {}) {
      if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidPortError(port);
      if (typeof host !== 'string' || host === '') throw new InvalidOptionsError(`host must be a host name or address, got ${JSON.stringify(host)}.`);
      if (!isLoopback(host) && !gate.enabled) throw new DashboardTokenRequiredError(host);
      if (closed) throw new InvalidOptionsError('This dashboard is closed: create another to listen again.');
      const server = createServer((req, res) => handler(req, res));
      await new Promise<void>((resolve, reject) => {
        server.once('error', (error: NodeJS.ErrnoException) => {
          const where = `${host}:${port}`;
          if (error.code === 'EADDRINUSE') reject(new DashboardListenError('PORT_IN_USE', `Port ${port} on ${host} is in use: pick another (--port), or 0 for any free port.`, { cause: error }));
          else if (error.code === 'EACCES') reject(new DashboardListenError('PORT_NOT_ALLOWED', `Not allowed to listen on ${where}: ports below 1024 need privileges; pick a higher one.`, { cause: error }));
          else reject(new DashboardListenError('LISTEN_FAILED', `Cannot listen on ${where}: ${error.message}. Check that the host is an address of this machine.`, { cause: error }));
        });
        server.listen(port, host, () => resolve());
      });
      servers.add(server);
      // Whoever listens on a name reaches the dashboard by it.
      if (isIP(host) === 0 && parseHost(host)) hosts.add(host);
      const address = server.address() as AddressInfo;
      const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return { url: `http://${shown}:${address.port}/`, host: address.address, port: address.port };
    },
    async close() {
      if (closed) return;
      closed = true;
      monitor.stop();
      for (const res of streams) res.end();
      streams.clear();
      ownMetrics?.close();
      await Promise.all(
        [...servers].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => resolve());
              server.closeAllConnections();
            }),
        ),
      );
      servers.clear();
    },
  };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store' });
  res.end();
}

/** The request body as text, up to `MAX_BODY`; an app's body parser may have read it already (Express `req.body`). */
async function readText(req: IncomingMessage): Promise<string> {
  const parsed = (req as { body?: unknown }).body;
  if (parsed !== undefined && (req as { readableEnded?: boolean }).readableEnded !== false) {
    if (typeof parsed === 'string') return parsed;
    if (parsed instanceof URLSearchParams) return parsed.toString();
    if (typeof parsed === 'object' && parsed !== null) return new URLSearchParams(parsed as Record<string, string>).toString();
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new DashboardRequestError(413, 'BODY_TOO_LARGE', `The request body is over ${MAX_BODY} bytes: redrive fewer ids at a time.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parsed = (req as { body?: unknown }).body;
  // express.json() has parsed it already: the stream is spent.
  if (parsed !== undefined && typeof parsed === 'object' && (req as { readableEnded?: boolean }).readableEnded !== false && !(parsed instanceof Buffer)) return parsed;
  const text = await readText(req);
  try {
    return JSON.parse(text);
  } catch {
    throw new DashboardRequestError(400, 'INVALID_JSON', 'The body is not valid JSON: send {"topic": "orders", "ids": ["order-42"]}.');
  }
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import {
  InvalidOptionsError,
  LIFECYCLES,
  OperationNotSupportedError,
  Tokens,
  TidingsError,
  UnknownSubscriptionError,
  type Lifecycle,
  type Tidings,
} from '@tidings/core';
import type { StorageAdapter } from '@tidings/core/adapter';
import { metricsPlugin, type MetricsPlugin } from '@tidings/metrics';
import { Gate, encrypted, isLoopback, queryTokenAllowed } from './auth.js';
import { lifecycleSvg } from './diagrams.js';
import { ACTIONS, Actions, type ActionName } from './actions.js';
import { DashboardListenError, DashboardRequestError, DashboardTokenRequiredError, InvalidPortError } from './errors.js';
import { Feed } from './feed.js';
import { json, readJsonObject, readText, redirect, send } from './http.js';
import { Messages } from './messages.js';
import { Monitor } from './monitor.js';
import { Targets } from './target.js';
import { AllowedHosts, checkHost, checkOrigin, parseHost } from './origin.js';
import { dashboardPage, loginPage } from './page/document.js';

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

/** A live dashboard of a Tidings instance or storage: an overview of every subscription, a message browser, operator actions, lifecycle diagrams with counts. */
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
  const feed = new Feed(monitor);
  const targets = new Targets(storage, now, tidings?.events);
  const actions = new Actions(targets, tidings);
  const messages = new Messages(targets);
  const servers = new Set<Server>();
  let closed = false;
  monitor.start();

  const api = {
    async page(res: ServerResponse): Promise<void> {
      const diagrams = await Promise.all(LIFECYCLES.map(async (l): Promise<[Lifecycle, string]> => [l, await lifecycleSvg(l)]));
      send(
        res,
        200,
        'text/html; charset=utf-8',
        dashboardPage({ title, mode: monitor.mode, latency: tidings !== undefined && options.metrics !== undefined, diagrams }),
      );
    },

    async act(verb: ActionName, req: IncomingMessage, res: ServerResponse): Promise<void> {
      const body = await readJsonObject(req, `{"topic": "orders", "subscription": "billing", "ids": ["order-42"]}`);
      json(res, 200, await actions.run(verb, body));
      // The act's result is seen on every open page at once, not at the next second.
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

  const reads: Record<string, (res: ServerResponse, url: URL, req: IncomingMessage) => Promise<void> | void> = {
    '/': (res) => api.page(res),
    '/events': (res, _url, req) => feed.open(req, res),
    '/api/snapshot': async (res) => json(res, 200, await monitor.snapshot()),
    '/api/messages': async (res, url) => json(res, 200, await messages.page(url.searchParams)),
    '/api/message': async (res, url) => json(res, 200, await messages.one(url.searchParams)),
    '/metrics': async (res) => send(res, 200, metrics.registry.contentType, await metrics.registry.metrics()),
  };
  const writes = new Map<string, ActionName>(ACTIONS.map((verb) => [`/api/${verb}`, verb]));

  async function route(req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid');
    const path = url.pathname;
    // Express strips the mount path from req.url and keeps it in req.baseUrl: links and the cookie need it back.
    const base = ((req as { baseUrl?: string }).baseUrl ?? '').replace(/\/$/, '');
    const method = req.method ?? 'GET';
    const known = Object.hasOwn(reads, path) || writes.has(path) || path === '/login';
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
    if (method === 'GET' && Object.hasOwn(reads, path)) return reads[path]!(res, url, req);
    const verb = writes.get(path);
    if (method === 'POST' && verb) return api.act(verb, req, res);
    res.setHeader('allow', verb || path === '/login' ? 'POST' : 'GET');
    throw new DashboardRequestError(405, 'METHOD_NOT_ALLOWED', `${method} ${path} is not supported here.`);
  }

  function unauthorized(req: IncomingMessage, res: ServerResponse, failed: boolean): void {
    res.setHeader('www-authenticate', 'Bearer realm="tidings-dashboard"');
    if (req.method === 'GET' && /text\/html/.test(String(req.headers.accept ?? ''))) {
      send(res, 401, 'text/html; charset=utf-8', loginPage({ title, failed }));
    } else {
      json(res, 401, {
        error: { code: 'UNAUTHORIZED', message: 'This dashboard needs its token: send "Authorization: Bearer <token>", or sign in on its page.' },
      });
    }
  }

  const handler: DashboardHandler = (req, res, next) => {
    route(req, res, next).catch((error: unknown) => {
      // Every failure is an answer, never a crash of the application the dashboard is mounted in.
      if (res.headersSent) return void res.end();
      if (error instanceof DashboardRequestError) return json(res, error.status, { error: { code: error.code, message: error.message } });
      const code = error instanceof TidingsError ? error.code : 'INTERNAL';
      json(res, statusOf(error), { error: { code, message: (error as Error)?.message ?? String(error) } });
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
          if (error.code === 'EADDRINUSE')
            reject(
              new DashboardListenError('PORT_IN_USE', `Port ${port} on ${host} is in use: pick another (--port), or 0 for any free port.`, { cause: error }),
            );
          else if (error.code === 'EACCES')
            reject(
              new DashboardListenError('PORT_NOT_ALLOWED', `Not allowed to listen on ${where}: ports below 1024 need privileges; pick a higher one.`, {
                cause: error,
              }),
            );
          else
            reject(
              new DashboardListenError('LISTEN_FAILED', `Cannot listen on ${where}: ${error.message}. Check that the host is an address of this machine.`, {
                cause: error,
              }),
            );
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
      feed.close();
      monitor.stop();
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

/** A core error's HTTP status: the caller's mistake, a name storage does not know, a verb the adapter lacks, or storage failing. */
function statusOf(error: unknown): number {
  if (error instanceof InvalidOptionsError) return 400;
  if (error instanceof UnknownSubscriptionError) return 404;
  if (error instanceof OperationNotSupportedError) return 501;
  return error instanceof TidingsError ? 503 : 500;
}

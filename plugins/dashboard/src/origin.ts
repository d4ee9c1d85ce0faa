import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { InvalidOptionsError } from '@tidings/core';
import { DashboardRequestError } from './errors.js';

/** A host as a Host header or an Origin names it: the name (lowercase, IPv6 without brackets) and the port if given. */
export interface HostPort {
  name: string;
  port?: string;
}

const NAME = /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/;

/** Splits a Host header value (`name`, `name:port`, `[v6]:port`) into name and port; undefined when it is not one. */
export function parseHost(value: string): HostPort | undefined {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/i.exec(value.trim());
  if (!m) return undefined;
  // A trailing dot names the same host (`localhost.`), so it must not slip past or fail an exact entry.
  const name = (m[1] ?? m[2]!).toLowerCase().replace(/\.$/, '');
  const valid = m[1] !== undefined ? isIP(name) === 6 : isIP(name) === 4 || NAME.test(name);
  return valid ? { name, port: m[3] } : undefined;
}

/**
 * The host names the dashboard answers to. Loopback names and IP addresses always: a rebinding page needs a DNS name
 * it controls, and an address is an origin of its own. Other names only when configured.
 */
export class AllowedHosts {
  private readonly names = new Set<string>();
  private readonly domains: string[] = [];
  private readonly any: boolean;

  constructor(option: readonly string[] | true | undefined) {
    this.any = option === true;
    if (option === undefined || option === true) return;
    if (!Array.isArray(option)) {
      throw new InvalidOptionsError(`allowedHosts must be a list of host names, e.g. ['dash.example.com'], or true; got ${JSON.stringify(option)}.`);
    }
    for (const entry of option) this.add(entry);
  }

  /** Allows `entry`: a name exactly (`dash.example.com`), or a domain and every name under it (`.example.com`). */
  add(entry: string): void {
    const domain = typeof entry === 'string' && entry.startsWith('.');
    const name =
      typeof entry === 'string'
        ? entry
            .slice(domain ? 1 : 0)
            .toLowerCase()
            .replace(/\.$/, '')
        : '';
    if (!NAME.test(name) && isIP(name) === 0) {
      throw new InvalidOptionsError(
        `allowedHosts (tidings dashboard --allowed-host) takes host names without scheme or port, such as 'dash.example.com', or '.example.com' for that domain and its subdomains; got ${JSON.stringify(entry)}.`,
      );
    }
    if (domain) this.domains.push(name);
    else this.names.add(name);
  }

  /** Whether a request addressed to `name` is answered. */
  allows(name: string): boolean {
    return this.any || isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost') || this.configured(name);
  }

  /** Whether `name` was configured: only such a name is trusted as another origin (a proxy's public name), never `true`. */
  configured(name: string): boolean {
    return this.names.has(name) || this.domains.some((d) => name === d || name.endsWith(`.${d}`));
  }
}

/** Refuses (421 `HOST_NOT_ALLOWED`) a request addressed to a host the dashboard does not answer to, or to none. */
export function checkHost(req: IncomingMessage, hosts: AllowedHosts): void {
  const header = hostHeader(req);
  if (header === undefined) {
    throw new DashboardRequestError(
      421,
      'HOST_NOT_ALLOWED',
      'The request has no Host header, so the dashboard cannot tell which name it was sent to: send one (HTTP/1.1 requires it).',
    );
  }
  const host = parseHost(header);
  if (!host) throw new DashboardRequestError(421, 'HOST_NOT_ALLOWED', `The Host header ${JSON.stringify(header)} is not a host name or address.`);
  if (hosts.allows(host.name)) return;
  throw new DashboardRequestError(
    421,
    'HOST_NOT_ALLOWED',
    `This dashboard does not answer to the host name "${host.name}": any web page can point a name of its own at this machine ` +
      `and read or redrive messages through its visitor's browser (DNS rebinding). If "${host.name}" is how you reach the dashboard, ` +
      `allow it: createDashboard({ allowedHosts: ['${host.name}'] }), or tidings dashboard --allowed-host ${host.name}.`,
  );
}

/**
 * Refuses (403 `CROSS_ORIGIN_REFUSED`) a state-changing request that a page of another origin made a browser send:
 * the login cookie rides along with it. A request with neither `Origin` nor `Sec-Fetch-Site` (curl, a script) goes on.
 */
export function checkOrigin(req: IncomingMessage, hosts: AllowedHosts, what: string): void {
  const site = single(req.headers['sec-fetch-site']);
  if (site !== undefined && site !== 'same-origin' && site !== 'none') refuse(what, `the browser says another site's page sent it (Sec-Fetch-Site: ${site})`);
  const origin = single(req.headers.origin);
  if (origin === undefined) return;
  if (origin === 'null') refuse(what, 'it comes from a page without an origin (Origin: null: a sandboxed frame, a file, or a redirect from elsewhere)');
  const from = originHost(origin);
  const to = parseHost(hostHeader(req) ?? '');
  if (from && to && from.name === to.name && from.port === (to.port ?? from.defaultPort)) return;
  // A proxy may pass its own address as Host: the public name the user configured is the page's origin then.
  if (from && hosts.configured(from.name)) return;
  refuse(what, `it comes from a page at ${origin}, not from this dashboard's own page at ${hostHeader(req) ?? 'this host'}`);
}

function refuse(what: string, why: string): never {
  throw new DashboardRequestError(
    403,
    'CROSS_ORIGIN_REFUSED',
    `Refused ${what}: ${why}. The dashboard takes changes only from its own page, so another site cannot act with a visitor's login. ` +
      `Send it from the dashboard's page, or from a program that sends no Origin header (curl, a script).`,
  );
}

function hostHeader(req: IncomingMessage): string | undefined {
  // Node's HTTP/2 compatibility API carries the host as :authority.
  return single(req.headers.host) ?? single(req.headers[':authority']);
}

function originHost(origin: string): (HostPort & { port: string; defaultPort: string }) | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  const defaultPort = url.protocol === 'https:' ? '443' : '80';
  const name = url.hostname
    .replace(/^\[|\]$/g, '')
    .toLowerCase()
    .replace(/\.$/, '');
  return { name, port: url.port || defaultPort, defaultPort };
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

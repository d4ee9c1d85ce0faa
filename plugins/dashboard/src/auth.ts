import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';

/** The cookie a login sets: a keyed digest of the token, so the cookie never holds the token itself. */
export const COOKIE = 'tidings_dashboard';

/** Whether a host name or address is this machine's loopback (where only local processes can connect). */
export function isLoopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  if (h.startsWith('::ffff:')) return isLoopback(h.slice(7));
  return isIP(h) === 4 && h.startsWith('127.');
}

/** What a request may do, given the dashboard's token. */
export class Gate {
  private readonly cookieValue?: string;

  constructor(private readonly token?: string) {
    if (token !== undefined) this.cookieValue = createHmac('sha256', token).update('tidings-dashboard-session').digest('base64url');
  }

  /** Whether a token is asked for at all. */
  get enabled(): boolean {
    return this.token !== undefined;
  }

  /** The request carries the token: as `Authorization: Bearer`, or as the login cookie. */
  allows(req: IncomingMessage): boolean {
    if (this.token === undefined) return true;
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    if (bearer !== undefined) return this.matches(bearer);
    const cookie = cookies(req)[COOKIE];
    return cookie !== undefined && same(cookie, this.cookieValue!);
  }

  /** Whether `candidate` is the token, compared in constant time. */
  matches(candidate: string): boolean {
    return this.token !== undefined && same(candidate, this.token);
  }

  /** The Set-Cookie header of a login: for the dashboard's path only, not readable by scripts, never sent cross-site. */
  cookie(path: string, secure: boolean): string {
    return `${COOKIE}=${this.cookieValue}; Path=${path}; HttpOnly; SameSite=Strict${secure ? '; Secure' : ''}`;
  }
}

/** Whether a `?token=` may be honoured: a URL's query ends up in logs and history, and over plain HTTP on the wire. */
export function queryTokenAllowed(req: IncomingMessage): boolean {
  return encrypted(req) || isLoopback(req.socket.remoteAddress ?? '');
}

/** The connection is TLS (an https server, or Express behind one). */
export function encrypted(req: IncomingMessage): boolean {
  return (req.socket as { encrypted?: boolean }).encrypted === true;
}

function cookies(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const i = part.indexOf('=');
    if (i > 0) out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

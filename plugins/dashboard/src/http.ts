import type { IncomingMessage, ServerResponse } from 'node:http';
import { DashboardRequestError } from './errors.js';

/** Largest request body read: a few thousand ids. */
export const MAX_BODY = 256 * 1024;

/** Answers with `body` as `type`, never cached and never sniffed as another type. */
export function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
  res.end(body);
}

/** Answers with `body` as JSON. */
export function json(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

/** Sends the browser to `location` with a GET. */
export function redirect(res: ServerResponse, location: string): void {
  res.writeHead(303, { location, 'cache-control': 'no-store' });
  res.end();
}

/** The request body as text, up to `MAX_BODY`; an app's body parser may have read it already (Express `req.body`). */
export async function readText(req: IncomingMessage): Promise<string> {
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
    if (size > MAX_BODY) throw new DashboardRequestError(413, 'BODY_TOO_LARGE', `The request body is over ${MAX_BODY} bytes: send fewer ids at a time.`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The body of a state-changing request as a JSON object. JSON only: a cross-site form cannot send it without a
 * preflight, so the login cookie cannot be ridden even by a browser that sends no Origin.
 */
export async function readJsonObject(req: IncomingMessage, example: string): Promise<Record<string, unknown>> {
  const type = String(req.headers['content-type'] ?? '');
  if (!/^application\/json\b/i.test(type)) {
    throw new DashboardRequestError(415, 'UNSUPPORTED_MEDIA_TYPE', `Send the request as JSON (Content-Type: application/json): ${example}.`);
  }
  const body = await readJson(req, example);
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    throw new DashboardRequestError(400, 'INVALID_REQUEST', `The body must be a JSON object: ${example}.`);
  return body as Record<string, unknown>;
}

async function readJson(req: IncomingMessage, example: string): Promise<unknown> {
  const parsed = (req as { body?: unknown }).body;
  // express.json() has parsed it already: the stream is spent.
  if (parsed !== undefined && typeof parsed === 'object' && (req as { readableEnded?: boolean }).readableEnded !== false && !(parsed instanceof Buffer))
    return parsed;
  const text = await readText(req);
  try {
    return JSON.parse(text);
  } catch {
    throw new DashboardRequestError(400, 'INVALID_JSON', `The body is not valid JSON: send ${example}.`);
  }
}

import { InvalidMessageError } from './errors.js';

/** The most header bytes one message may carry, as stored (JSON). */
export const MAX_HEADER_BYTES = 8_192;

/** A header name: an HTTP token (`traceparent`, `x-tenant`), so headers travel into HTTP and back unchanged. */
const NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$/;

const NONE: Readonly<Record<string, string>> = Object.freeze({});

/**
 * Checks a message's headers (string names and values, size-limited) and serializes them for storage; undefined
 * when there are none, so a message without headers costs nothing. Throws `InvalidMessageError` naming what is wrong
 * (`where` names the message, and is only called for an error).
 */
export function serializeHeaders(headers: unknown, where: () => string): string | undefined {
  if (headers === undefined) return undefined;
  const proto: unknown = typeof headers === 'object' && headers !== null ? Object.getPrototypeOf(headers) : undefined;
  if (proto !== Object.prototype && proto !== null) {
    throw new InvalidMessageError(
      `headers${where()} must be a plain object of string values, e.g. { 'x-tenant': 'acme' }, got ${Array.isArray(headers) ? 'an array' : typeof headers}.`,
    );
  }
  const entries = Object.entries(headers as Record<string, unknown>);
  if (entries.length === 0) return undefined;
  for (const [name, value] of entries) {
    if (!NAME.test(name))
      throw new InvalidMessageError(
        `Header name ${JSON.stringify(name)}${where()} is not allowed: use 1-128 letters, digits or !#$%&'*+.^_\`|~- (an HTTP token).`,
      );
    if (typeof value !== 'string')
      throw new InvalidMessageError(
        `Header "${name}"${where()} must be a string, got ${value === null ? 'null' : typeof value}. Convert it, e.g. String(value).`,
      );
  }
  const text = JSON.stringify(headers);
  const bytes = Buffer.byteLength(text);
  if (bytes > MAX_HEADER_BYTES)
    throw new InvalidMessageError(`Headers${where()} take ${bytes} bytes, more than the ${MAX_HEADER_BYTES} allowed. Keep large data in the payload.`);
  return text;
}

/** A stored message's headers as a handler sees them: a frozen object, empty when the message has none. */
export function parseHeaders(text: string | undefined): Readonly<Record<string, string>> {
  return text === undefined ? NONE : Object.freeze(JSON.parse(text) as Record<string, string>);
}

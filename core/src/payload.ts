import { InvalidMessageError } from './errors.js';

const HINT = 'Send plain objects, arrays, strings, numbers, booleans or null.';

/** Where in `value` JSON would silently drop or change something, and how; undefined when it round-trips. */
function hazard(value: unknown, path: string): string | undefined {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? undefined : `${path} is ${value}, which JSON writes as null`;
    case 'undefined':
      return `${path} is undefined, which JSON ${path.endsWith(']') ? 'writes as null' : 'drops'}`;
    case 'function':
      return `${path} is a function, which JSON drops`;
    case 'symbol':
      return `${path} is a symbol, which JSON drops`;
    case 'object': {
      if (value === null) return undefined;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const found = hazard(value[i], `${path}[${i}]`);
          if (found) return found;
        }
        return undefined;
      }
      if (value instanceof Map || value instanceof Set) return `${path} is a ${value instanceof Map ? 'Map' : 'Set'}, which JSON writes as {}`;
      // A Date (or any value with toJSON) chooses its own JSON form on purpose.
      if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return undefined;
      for (const key of Object.keys(value)) {
        const found = hazard((value as Record<string, unknown>)[key], `${path}.${key}`);
        if (found) return found;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * The payload as the JSON a message carries. Refuses, with `INVALID_MESSAGE`, what JSON cannot write and what it
 * would silently change (a function, symbol or undefined inside, a Map or Set, NaN or Infinity), so a handler
 * never gets a payload other than the one sent. `where` names the message, and is only called for an error.
 */
export function serializePayload(payload: unknown, where: () => string): string {
  let body: string | undefined;
  try {
    body = JSON.stringify(payload);
  } catch (cause) {
    throw new InvalidMessageError(`The payload${where()} is not JSON-serializable (${(cause as Error).message}). ${HINT}`, { cause });
  }
  if (body === undefined) throw new InvalidMessageError(`The payload${where()} serializes to nothing (${typeof payload}). ${HINT}`);
  // Only objects can hide a change: JSON.stringify has already refused or written every other kind faithfully.
  const changed = typeof payload === 'object' || typeof payload === 'number' ? hazard(payload, 'payload') : undefined;
  if (changed) throw new InvalidMessageError(`The payload${where()} would not arrive as sent: ${changed}. ${HINT}`);
  return body;
}

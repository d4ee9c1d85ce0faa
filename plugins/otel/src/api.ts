import type * as Api from '@opentelemetry/api';
import { createRequire } from 'node:module';
import { OtelApiMissingError } from './errors.js';

/** The `@opentelemetry/api` module. */
export type OtelApi = typeof Api;

const API = '@opentelemetry/api';

/**
 * Loads `@opentelemetry/api` when a plugin is created, not when this package is imported, so an application without
 * it can still import `@tidings/otel` and gets `OtelApiMissingError` instead of a resolution error from a file of ours.
 * The API keeps its providers in one global, so this copy sees what the application's SDK registered.
 */
export function loadOtelApi(load: (id: string) => unknown = createRequire(import.meta.url)): OtelApi {
  try {
    return load(API) as OtelApi;
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown };
    // Only the API itself missing: a failure inside an installed API is not ours to rename.
    if (e.code === 'MODULE_NOT_FOUND' && String(e.message).includes(`'${API}'`)) throw new OtelApiMissingError({ cause: error });
    throw error;
  }
}

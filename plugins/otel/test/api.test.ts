import { TidingsError } from '@tidings/core';
import { describe, expect, it } from 'vitest';
import { loadOtelApi } from '../src/api.js';
import { OtelApiMissingError } from '../src/index.js';

/** What Node's require throws for a package that is not installed. */
const notFound = (id: string) =>
  Object.assign(new Error(`Cannot find module '${id}'\nRequire stack:\n- /app/node_modules/@tidings/otel/dist/index.cjs`), { code: 'MODULE_NOT_FOUND' });

describe('loading @opentelemetry/api', () => {
  it('throws OtelApiMissingError (OTEL_API_MISSING) saying to install it when the API is not installed', () => {
    const cause = notFound('@opentelemetry/api');
    const error = (() => {
      try {
        loadOtelApi(() => {
          throw cause;
        });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(OtelApiMissingError);
    expect(error).toBeInstanceOf(TidingsError);
    expect(error).toMatchObject({
      code: 'OTEL_API_MISSING',
      name: 'OtelApiMissingError',
      cause,
      message: expect.stringContaining('npm install @opentelemetry/api'),
    });
  });

  it('lets any other failure through unchanged, a module missing inside an installed API among them', () => {
    const inner = notFound('./trace/ProxyTracer');
    const broken = new SyntaxError('Unexpected token');
    for (const thrown of [inner, broken]) {
      expect(() =>
        loadOtelApi(() => {
          throw thrown;
        }),
      ).toThrow(thrown);
    }
  });

  it('loads the installed API, the copy the application registers its SDK with', async () => {
    const api = await import('@opentelemetry/api');
    expect(loadOtelApi().trace.getTracerProvider()).toBe(api.trace.getTracerProvider());
  });
});

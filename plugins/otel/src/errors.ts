import { TidingsError } from '@tidings/core';

/** `otelPlugin()` was called where `@opentelemetry/api`, its optional peer dependency, cannot be loaded. */
export class OtelApiMissingError extends TidingsError {
  constructor(options?: { cause?: unknown }) {
    super(
      'OTEL_API_MISSING',
      '@tidings/otel needs @opentelemetry/api, which is not installed. Install it next to your OpenTelemetry SDK ' +
        '(npm install @opentelemetry/api), or leave otelPlugin() out of your plugins.',
      options,
    );
  }
}

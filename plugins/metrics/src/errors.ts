import { TidingsError } from '@tidings/core';

/** One metrics plugin was handed to a second Tidings instance: its per-state gauge can read only one storage. */
export class MetricsPluginReusedError extends TidingsError {
  constructor() {
    super(
      'METRICS_PLUGIN_REUSED',
      'This metricsPlugin() is already set up by another Tidings instance. Create one plugin per instance; to scrape them together, ' +
        'give each its own prefix on one registry: metricsPlugin({ registry, prefix: "app2_tidings_" }).',
    );
  }
}

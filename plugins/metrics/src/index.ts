export { metricsPlugin, type MetricsOptions, type MetricsPlugin, type TidingsMetrics } from './metrics.js';
export { MetricsPluginReusedError } from './errors.js';

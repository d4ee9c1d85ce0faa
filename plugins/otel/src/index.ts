export { otelPlugin, MESSAGING_SYSTEM, type OtelPluginOptions } from './plugin.js';
export { OtelApiMissingError } from './errors.js';

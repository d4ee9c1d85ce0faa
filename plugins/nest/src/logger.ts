import { Logger, type LoggerService } from '@nestjs/common';
import type { Logger as TidingsLogger } from '@tidings/core';

const line = (msg: string, data?: object) => (data === undefined ? msg : `${msg} ${JSON.stringify(data)}`);

/**
 * Tidings' logger over a Nest logger (default: `new Logger('Tidings')`), one line per entry with its data as JSON.
 * Nest would print a data object as a second entry of its own, so the two are joined here.
 */
export function nestLogger(logger: LoggerService = new Logger('Tidings')): TidingsLogger {
  return {
    debug: (msg, data) => logger.debug?.(line(msg, data)),
    warn: (msg, data) => logger.warn(line(msg, data)),
    error: (msg, data) => logger.error(line(msg, data)),
  };
}

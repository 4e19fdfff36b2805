import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import type { Logger } from '../lib/logger.ts';

const LEVELS: Record<LogLevel, 'trace' | 'debug' | 'info' | 'warn' | 'error'> = {
  TRACE: 'trace',
  DEBUG: 'debug',
  INFO: 'info',
  WARN: 'warn',
  ERROR: 'error',
};

/** Sends the Temporal SDK's own logs (worker, workflow `log`, activity `log`) into our pino root. Once per process. */
export function installTemporalRuntime(log: Logger, level: LogLevel = 'INFO'): void {
  const sdk = log.child({ component: 'temporal' });
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => sdk[LEVELS[entry.level]]({ ...entry.meta }, entry.message)),
  });
}

/** Library code never writes to the console itself: it is handed a logger. */
export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

type Level = 'debug' | 'info' | 'warn' | 'error';
const order: Level[] = ['debug', 'info', 'warn', 'error'];

/** Line-per-record logger to stderr, for the CLI and workers. */
export function createLogger(name: string, minLevel: Level = 'info'): Logger {
  const min = order.indexOf(minLevel);
  const write = (level: Level) => (message: string, meta?: Record<string, unknown>) => {
    if (order.indexOf(level) < min) return;
    const extra = meta && Object.keys(meta).length ? ' ' + JSON.stringify(meta) : '';
    process.stderr.write(`${new Date().toISOString()} ${level.toUpperCase().padEnd(5)} [${name}] ${message}${extra}\n`);
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

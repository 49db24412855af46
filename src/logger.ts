/**
 * One logger for every process (pino): JSON lines on stderr, one record per line with
 * `time`, `level`, `name` and whatever applies (`site`, `member`, `workflowId`…); a
 * one-line text form when stderr is a terminal (or LOG_FORMAT=pretty). The level comes
 * from LOG_LEVEL. Library code never writes to the console itself: it is handed a logger.
 */
import { Writable } from 'node:stream';
import pino from 'pino';

export interface Logger {
  debug(message: string, meta?: Record<string, unknown>): void;
  info(message: string, meta?: Record<string, unknown>): void;
  warn(message: string, meta?: Record<string, unknown>): void;
  error(message: string, meta?: Record<string, unknown>): void;
}

export const LEVELS = ['trace', 'debug', 'info', 'warn', 'error'] as const;
export type Level = (typeof LEVELS)[number];

/** LOG_LEVEL, checked: a typo would otherwise silence or flood a process without a word. */
export function envLevel(env: NodeJS.ProcessEnv = process.env): Level | undefined {
  const v = env.LOG_LEVEL?.trim().toLowerCase();
  if (!v) return undefined;
  if (!(LEVELS as readonly string[]).includes(v)) throw new Error(`LOG_LEVEL must be one of ${LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`);
  return v as Level;
}

/** pino's numeric levels, named as the pretty form prints them. */
const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** The text form: `time LEVEL [name] message {rest}`, from the very records the JSON form writes. */
export function prettyLine(record: string): string {
  let r: Record<string, unknown>;
  try {
    r = JSON.parse(record) as Record<string, unknown>;
  } catch {
    return record;
  }
  const { time, level, name, msg, pid: _pid, hostname: _host, ...rest } = r;
  const extra = Object.keys(rest).length ? ' ' + JSON.stringify(rest) : '';
  return `${String(time)} ${(LEVEL_NAMES[level as number] ?? String(level)).padEnd(5)} [${String(name)}] ${String(msg)}${extra}`;
}

function prettyStream(): Writable {
  let pending = '';
  return new Writable({
    write(chunk: Buffer, _enc, done) {
      pending += chunk.toString('utf8');
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) if (l) process.stderr.write(prettyLine(l) + '\n');
      done();
    },
  });
}

function pretty(env: NodeJS.ProcessEnv): boolean {
  if (env.LOG_FORMAT === 'json') return false;
  if (env.LOG_FORMAT === 'pretty') return true;
  return Boolean(process.stderr.isTTY);
}

let root: pino.Logger | undefined;

/** The process's pino logger: every Logger here, and the Temporal SDK's (see sdkLogger), write through it. */
export function rootLogger(): pino.Logger {
  root ??= pino(
    {
      level: 'trace', // each child filters at its own level
      timestamp: pino.stdTimeFunctions.isoTime,
      base: { pid: process.pid },
      formatters: { level: (_label, number) => ({ level: number }) },
    },
    pretty(process.env) ? prettyStream() : pino.destination({ fd: 2, sync: true }),
  );
  return root;
}

/** A pino child as a Logger: `meta` becomes the record's fields. */
export function asLogger(p: pino.Logger): Logger {
  const at = (level: Exclude<Level, 'trace'>) => (message: string, meta?: Record<string, unknown>) => p[level](meta ?? {}, message);
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/**
 * A named logger, its fields (`bindings`, such as the site) on every line. `minLevel` is
 * the default; LOG_LEVEL, when set, wins.
 */
export function createLogger(name: string, minLevel: Level = 'info', bindings: Record<string, unknown> = {}): Logger {
  return asLogger(rootLogger().child({ name, ...bindings }, { level: envLevel() ?? minLevel }));
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

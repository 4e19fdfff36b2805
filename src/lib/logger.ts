import pino from 'pino';
import pretty from 'pino-pretty';

export type Logger = pino.Logger;

// Keys whose values must never reach a log line, wherever they sit in a logged object.
const SECRET_KEYS = [
  'token',
  'hfToken',
  'accessToken',
  'refreshToken',
  'password',
  'secret',
  'clientSecret',
  'apiKey',
  'authorization',
  'Authorization',
  'cookie',
  'Cookie',
  'set-cookie',
  'Set-Cookie',
  'x-api-key',
];

// Depth 0..4 covers `{ token }`, `{ req: { headers: { authorization } } }` and an error's
// `err.config.headers.authorization`; deeper wildcards make every log call slower.
const MAX_DEPTH = 4;

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const key of SECRET_KEYS) {
    const leaf = /^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `["${key}"]`;
    for (let depth = 0; depth <= MAX_DEPTH; depth++) {
      const prefix = Array.from({ length: depth }, () => '*').join('.');
      paths.push(depth === 0 ? leaf.replace(/^\./, '') : `${prefix}${leaf}`);
    }
  }
  return paths;
}

/** `json`: one JSON object a line, for log collectors; `pretty`: one readable, coloured line an event, for people. */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/** `auto` is pretty at a terminal and JSON otherwise (a pipe, a file, a container's log driver). */
export function resolveLogFormat(setting: (typeof LOG_FORMATS)[number], stdoutIsTty: boolean): LogFormat {
  return setting === 'auto' ? (stdoutIsTty ? 'pretty' : 'json') : setting;
}

export function createLogger(opts: {
  level: string;
  name?: string;
  format?: LogFormat;
  destination?: pino.DestinationStream;
  /** Colours for pretty lines; by default when writing to a terminal. */
  colorize?: boolean;
}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    redact: { paths: redactPaths(), censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  };
  if (opts.name !== undefined) options.name = opts.name;
  if (opts.format === 'pretty') {
    // In-process and synchronous: no worker thread to lose lines when the process exits on a failed start.
    const stream = pretty({
      destination: opts.destination ?? 1,
      sync: true,
      colorize: opts.colorize ?? (opts.destination === undefined && process.stdout.isTTY === true),
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
    });
    return pino(options, stream);
  }
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

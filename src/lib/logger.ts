import pino from 'pino';

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

export function createLogger(opts: {
  level: string;
  name?: string;
  destination?: pino.DestinationStream;
}): Logger {
  const options: pino.LoggerOptions = {
    level: opts.level,
    redact: { paths: redactPaths(), censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err },
  };
  if (opts.name !== undefined) options.name = opts.name;
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

import { z } from 'zod';
import { parseAllowlist, type OutboundAllowlist } from './lib/address-rules.ts';
import { LOG_FORMATS } from './lib/logger.ts';

// The only reader of process.env: every variable is parsed once, here, into a frozen Config.

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

/** Durations accept plain milliseconds or a number with a unit: "500ms", "30s", "5m", "1h". */
const duration = z.string().transform((raw, ctx) => {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(raw.trim());
  if (!m) {
    ctx.addIssue({ code: 'custom', message: `not a duration (use e.g. 500ms, 30s, 5m, 1h): "${raw}"` });
    return z.NEVER;
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(m[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
});

const resultStore = z.string().refine((v) => /^file:\/\/.+/.test(v) || /^hf:\/\/datasets\/[^/]+\/[^/]+$/.test(v), {
  message: 'must be file://DIR or hf://datasets/OWNER/NAME',
});

const ENCRYPTION_KEY_FORMAT = /^([0-9a-fA-F]{64}|[A-Za-z0-9+/_-]{43}=?)$/;

/** Comma-separated keys, each in ENCRYPTION_KEY's format; the position is named, never the key. */
const encryptionKeyList = z.string().transform((raw, ctx) => {
  const keys = raw.split(',').map((k) => k.trim()).filter((k) => k !== '');
  keys.forEach((k, i) => {
    if (!ENCRYPTION_KEY_FORMAT.test(k)) ctx.addIssue({ code: 'custom', message: `key ${i + 1} must be 32 bytes as 64 hex characters or base64` });
  });
  return keys;
});

const allowlist = z.string().transform((raw, ctx) => {
  try {
    return parseAllowlist(raw);
  } catch (e) {
    ctx.addIssue({ code: 'custom', message: (e as Error).message });
    return z.NEVER;
  }
});

function isJson(raw: string): boolean {
  try {
    JSON.parse(raw);
    return true;
  } catch {
    return false;
  }
}

const schema = z.object({
  PORT: int(0, 65535).default(8080),
  HOST: z.string().default('127.0.0.1'),
  /** Unset: `dev` runs an embedded Postgres in DATA_DIR/postgres; every other server command needs a URL. */
  DATABASE_URL: z.string().url().optional(),
  // Unset: caches, slots, limits and the live event feed live in the one process (`dev` only; see requireSharedRedis).
  REDIS_URL: z.string().url().optional(),
  TEMPORAL_ADDRESS: z.string().default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().default('default'),
  TASK_QUEUE: z.string().default('orchestrator-tasks'),
  JWT_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  JWT_JWKS_URL: z.string().url().optional(),
  JWT_ISSUER: z.string().default('orchestrator'),
  JWT_AUDIENCE: z.string().default('orchestrator-api'),
  JWT_TTL: duration.refine((ms) => ms >= 1000 && ms <= 15 * 60_000, 'must be between 1s and 15m').default(15 * 60_000),
  JWT_SIGNING_KEYS: z.string().refine(isJson, 'must be a JSON JWK set or array of private ES256 JWKs').optional(),
  REFRESH_TOKEN_TTL: duration.refine((ms) => ms >= 60_000, 'must be at least 1m').default(30 * 24 * 3_600_000),
  APP_URL: z.string().url().optional(),
  GITHUB_CLIENT_ID: z.string().optional(),
  GITHUB_CLIENT_SECRET: z.string().optional(),
  GITHUB_URL: z.string().url().default('https://github.com'),
  GITHUB_API_URL: z.string().url().default('https://api.github.com'),
  GITHUB_SCOPES: z.string().default('read:user'),
  HF_CLIENT_ID: z.string().optional(),
  HF_CLIENT_SECRET: z.string().optional(),
  HF_OAUTH_ISSUER: z.string().url().default('https://huggingface.co'),
  HF_SCOPES: z.string().default('openid profile read-repos'),
  ALLOW_DEV_TOKENS: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  RESULT_INLINE_MAX_BYTES: int(1, 64 * 1024 * 1024).default(1024 * 1024),
  RESULT_STORE: resultStore.default('file://./data/results'),
  HF_ENDPOINT: z.string().url().default('https://huggingface.co'),
  HF_TOKEN: z.string().optional(),
  MAX_CONCURRENT_JOBS: int(1).default(16),
  AGENT_MAX_PARALLEL: int(1).default(4),
  CONSENT_TIMEOUT: duration.default(15 * 60_000),
  DISPATCH_RETRY_INITIAL: duration.default(1000),
  DISPATCH_RETRY_MAX: duration.default(30_000),
  TOOL_TIMEOUT: duration.default(10 * 60_000),
  PROBE_TIMEOUT: duration.default(5000),
  PROBE_FRESH: duration.default(2000),
  MCP_SESSIONS: z.enum(['on', 'off']).default('on'),
  MCP_SESSION_IDLE: duration.default(60_000),
  HEARTBEAT_TIMEOUT: duration.default(30_000),
  SPACE_START_TIMEOUT: duration.default(5 * 60_000),
  SPACE_POLL_INTERVAL: duration.default(2000),
  REDIS_PREFIX: z.string().regex(/^[\w:.-]*$/).default('orch:'),
  SSE_HEARTBEAT: duration.default(15_000),
  RECONCILE_INTERVAL: duration.refine((ms) => ms >= 100, 'must be at least 100ms').default(5000),
  RECONCILE_GRACE: duration.default(15_000),
  ENCRYPTION_KEY: z.string({ error: 'is required (32 bytes as 64 hex characters; `npm start` generates one)' }).regex(ENCRYPTION_KEY_FORMAT, 'must be 32 bytes as 64 hex characters or base64'),
  ENCRYPTION_KEYS_PREVIOUS: encryptionKeyList.default([]),
  MAX_REQUEST_BYTES: int(1024).default(8 * 1024 * 1024),
  RATE_LIMITS: z.enum(['on', 'off']).default('on'),
  RATE_LIMIT_WINDOW: duration.refine((ms) => ms >= 1000 && ms % 1000 === 0, 'must be whole seconds, at least 1s').default(60_000),
  RATE_LIMIT_REQUESTS: int(1).default(600),
  RATE_LIMIT_SUBMISSIONS: int(1).default(120),
  RATE_LIMIT_ANONYMOUS: int(1).default(300),
  MAX_ACTIVE_TASKS_PER_PROJECT: int(1).default(100),
  MAX_SSE_STREAMS_PER_USER: int(1).default(20),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  LOG_FORMAT: z.enum(LOG_FORMATS).default('auto'),
  DATA_DIR: z.string().default('./data'),
  TEMPORAL_UI_PORT: int(1, 65535).default(8233),
  WORKER_METRICS_PORT: int(0, 65535).default(0),
  WORKER_MAX_CACHED_WORKFLOWS: int(0, 100_000).default(250),
  WORKFLOW_BUNDLE: z.string().optional(),
  TRUST_PROXY: z.enum(['true', 'false'], { error: 'must be true or false' }).default('false'),
  ADMIN_LOGINS: z
    .string()
    .regex(/^\s*[A-Za-z0-9][\w.-]{0,62}(\s*,\s*[A-Za-z0-9][\w.-]{0,62})*\s*$/, 'must be a comma list of logins')
    .optional(),
  OUTBOUND_ALLOWLIST: allowlist.default(parseAllowlist('')),
  NODE_ENV: z.string().default('development'),
  API_KEYS_PER_USER: int(1, 10_000).default(20),
  API_KEY_MAX_TTL: duration.refine((ms) => ms >= 60_000, 'must be at least 1m').default(365 * 24 * 3_600_000),
  PUBLIC_URL: z
    .string()
    .url()
    .regex(/^https?:\/\/[^/?#]+\/?$/, 'must be an origin such as https://orchestrator.example.com (no path)')
    .optional(),
});

export type Config = Readonly<{
  port: number;
  host: string;
  databaseUrl: string;
  /** Absent: everything Redis would keep stays in this process's memory. */
  redisUrl?: string;
  redisPrefix: string;
  temporal: Readonly<{ address: string; namespace: string; taskQueue: string; uiPort: number }>;
  jwt: Readonly<{ secret?: string; jwksUrl?: string; issuer: string; audience: string; ttlSeconds: number; signingKeysJson?: string }>;
  /** Sign-in: where the API and the app are reached, refresh token lifetime, and the OAuth providers that are configured. */
  auth: Readonly<{
    publicUrl: string;
    appUrl?: string;
    refreshTtlSeconds: number;
    allowDevTokens: boolean;
    github?: Readonly<{ clientId: string; clientSecret: string; url: string; apiUrl: string; scopes: string }>;
    huggingface?: Readonly<{ clientId: string; clientSecret: string; issuer: string; scopes: string }>;
  }>;
  results: Readonly<{ inlineMaxBytes: number; store: string }>;
  huggingFace: Readonly<{ endpoint: string; token?: string }>;
  limits: Readonly<{ maxConcurrentJobs: number; maxRequestBytes: number }>;
  /** Steps (forEach items) of one agent run in flight at once. */
  agentMaxParallel: number;
  /** Per-tenant limits (RATE_LIMITS=off turns all of them off); rates count per window of `windowSeconds`. */
  rateLimits: Readonly<{
    enabled: boolean;
    windowSeconds: number;
    requestsPerUser: number;
    submissionsPerUser: number;
    anonymousPerIp: number;
    activeTasksPerProject: number;
    streamsPerUser: number;
  }>;
  task: Readonly<{
    consentTimeoutMs: number;
    retryInitialMs: number;
    retryMaxMs: number;
    toolTimeoutMs: number;
    probeTimeoutMs: number;
    probeFreshMs: number;
    heartbeatTimeoutMs: number;
    spaceStartTimeoutMs: number;
    spacePollMs: number;
  }>;
  /** Initialized MCP sessions reused across calls to the same endpoint and credentials (off: one per call). */
  mcpSessions: Readonly<{ enabled: boolean; idleMs: number }>;
  sseHeartbeatMs: number;
  /** How often API and worker processes look for accepted tasks never started, and how old such a task must be. */
  reconciler: Readonly<{ intervalMs: number; graceMs: number }>;
  encryptionKey: string;
  /** Older keys whose sealed values still open until `orchestrator keys rotate` re-seals them. */
  encryptionKeysPrevious: readonly string[];
  logLevel: string;
  dataDir: string;
  workerMetricsPort: number;
  /** Workflows a worker keeps in memory; evicted ones are replayed when they wake. */
  workerMaxCachedWorkflows: number;
  /** Private addresses the platform may call anyway (registered and bound URLs); empty: public addresses only. */
  outbound: Readonly<{ allowlist: OutboundAllowlist }>;
  nodeEnv: string;
  /** A prebuilt workflow bundle (`orchestrator bundle`): the worker then skips webpack at start. */
  workflowBundle?: string;
  /** The API runs behind a reverse proxy: client addresses come from X-Forwarded-For. */
  trustProxy: boolean;
  /** Platform admins by login (besides those granted with `orchestrator admin grant`). */
  adminLogins: readonly string[];
  /** Active API keys a user may hold, and the longest a key may live (also the lifetime of a key created without expiresAt). */
  apiKeys: Readonly<{ maxPerUser: number; maxTtlMs: number }>;
  /** The origin clients reach the API at (for links and OAuth metadata); unset: taken from each request. */
  publicUrl?: string;
}>;

/**
 * The logger's settings alone: the logger exists before the rest of the configuration is read (and may have to
 * report that it is invalid), so these two are parsed on their own, by the same rules as in loadConfig.
 */
export function loadLogSettings(env: Record<string, string | undefined>): { level: string; format: (typeof LOG_FORMATS)[number] } {
  const parsed = schema.pick({ LOG_LEVEL: true, LOG_FORMAT: true }).safeParse(withoutEmpty(env));
  if (!parsed.success) throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  return { level: parsed.data.LOG_LEVEL, format: parsed.data.LOG_FORMAT };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/**
 * Separate `api` and `worker` processes must share dispatch slots, limits and the live event feed: without Redis each
 * would keep its own (a cap per process instead of one, events that never reach the API's streams).
 */
export function requireSharedRedis(config: Config, command: string): void {
  if (config.redisUrl) return;
  throw new ConfigError([
    `REDIS_URL: \`${command}\` needs a Redis shared by every API and worker process (slots, limits and live events live there); only \`dev\`, one process, runs without it`,
  ]);
}

/** Empty strings count as unset, so `FOO=` in a .env file falls back to the default. */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ''));
}

/** Where the Temporal CLI's releases live; TEMPORAL_CLI_DOWNLOAD_URL replaces it (a mirror, or a local server in tests). */
const DEFAULT_CLI_DOWNLOAD_URL = 'https://github.com/temporalio/cli/releases/download';

const temporalCliSchema = z.object({
  TEMPORAL_CLI_DOWNLOAD: z.enum(['on', 'off'], { error: 'must be on or off' }).optional(),
  TEMPORAL_CLI_DOWNLOAD_URL: z
    .string()
    .url()
    .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL')
    .default(DEFAULT_CLI_DOWNLOAD_URL),
  CI: z.string().optional(),
});

/**
 * Whether and from where a missing Temporal CLI is downloaded. Read apart from loadConfig because
 * tests, CI and benchmarks look for the CLI without a full configuration. Unless TEMPORAL_CLI_DOWNLOAD
 * says otherwise, `byDefault` decides, and CI (CI set to anything but false/0) never downloads.
 */
export function temporalCliDownload(
  env: Record<string, string | undefined>,
  { byDefault }: { byDefault: boolean },
): { baseUrl: string } | undefined {
  const parsed = temporalCliSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const inCi = e.CI !== undefined && !/^(false|0)$/i.test(e.CI);
  const enabled = e.TEMPORAL_CLI_DOWNLOAD === undefined ? byDefault && !inCi : e.TEMPORAL_CLI_DOWNLOAD === 'on';
  return enabled ? { baseUrl: e.TEMPORAL_CLI_DOWNLOAD_URL } : undefined;
}

const DATABASE_URL_MISSING =
  'DATABASE_URL: not set. api, worker, migrate and keys need a Postgres URL (postgres://USER@HOST:PORT/DB); only dev runs an embedded Postgres without one';

/** Whether DATABASE_URL is given; when it is not, `dev` (and `token`, `admin` beside it) use the embedded Postgres. */
export function databaseUrlGiven(env: Record<string, string | undefined>): boolean {
  return withoutEmpty(env).DATABASE_URL !== undefined;
}

export function loadConfig(env: Record<string, string | undefined>): Config {
  const parsed = schema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  if (e.JWT_SECRET === undefined && e.JWT_JWKS_URL === undefined && e.JWT_SIGNING_KEYS === undefined) {
    throw new ConfigError(['JWT_SECRET: set JWT_SECRET (HS256, 32+ characters), JWT_SIGNING_KEYS or JWT_JWKS_URL']);
  }
  const pairs: string[] = [];
  for (const [id, secret] of [['GITHUB_CLIENT_ID', 'GITHUB_CLIENT_SECRET'], ['HF_CLIENT_ID', 'HF_CLIENT_SECRET']] as const) {
    if ((e[id] === undefined) !== (e[secret] === undefined)) pairs.push(`${e[id] === undefined ? id : secret}: set both ${id} and ${secret}, or neither`);
  }
  if (pairs.length > 0) throw new ConfigError(pairs);
  if (e.DATABASE_URL === undefined) throw new ConfigError([DATABASE_URL_MISSING]);
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    redisUrl: e.REDIS_URL,
    redisPrefix: e.REDIS_PREFIX,
    temporal: Object.freeze({
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      taskQueue: e.TASK_QUEUE,
      uiPort: e.TEMPORAL_UI_PORT,
    }),
    jwt: Object.freeze({
      secret: e.JWT_SECRET,
      jwksUrl: e.JWT_JWKS_URL,
      issuer: e.JWT_ISSUER,
      audience: e.JWT_AUDIENCE,
      ttlSeconds: Math.floor(e.JWT_TTL / 1000),
      signingKeysJson: e.JWT_SIGNING_KEYS,
    }),
    auth: Object.freeze({
      publicUrl: (e.PUBLIC_URL ?? `http://${e.HOST.includes(':') ? `[${e.HOST}]` : e.HOST}:${e.PORT}`).replace(/\/+$/, ''),
      appUrl: e.APP_URL,
      refreshTtlSeconds: Math.floor(e.REFRESH_TOKEN_TTL / 1000),
      allowDevTokens: e.ALLOW_DEV_TOKENS === 'true',
      github:
        e.GITHUB_CLIENT_ID && e.GITHUB_CLIENT_SECRET
          ? Object.freeze({ clientId: e.GITHUB_CLIENT_ID, clientSecret: e.GITHUB_CLIENT_SECRET, url: e.GITHUB_URL.replace(/\/+$/, ''), apiUrl: e.GITHUB_API_URL.replace(/\/+$/, ''), scopes: e.GITHUB_SCOPES })
          : undefined,
      huggingface:
        e.HF_CLIENT_ID && e.HF_CLIENT_SECRET
          ? Object.freeze({ clientId: e.HF_CLIENT_ID, clientSecret: e.HF_CLIENT_SECRET, issuer: e.HF_OAUTH_ISSUER.replace(/\/+$/, ''), scopes: e.HF_SCOPES })
          : undefined,
    }),
    results: Object.freeze({ inlineMaxBytes: e.RESULT_INLINE_MAX_BYTES, store: e.RESULT_STORE }),
    huggingFace: Object.freeze({ endpoint: e.HF_ENDPOINT, token: e.HF_TOKEN }),
    limits: Object.freeze({ maxConcurrentJobs: e.MAX_CONCURRENT_JOBS, maxRequestBytes: e.MAX_REQUEST_BYTES }),
    agentMaxParallel: e.AGENT_MAX_PARALLEL,
    rateLimits: Object.freeze({
      enabled: e.RATE_LIMITS === 'on',
      windowSeconds: e.RATE_LIMIT_WINDOW / 1000,
      requestsPerUser: e.RATE_LIMIT_REQUESTS,
      submissionsPerUser: e.RATE_LIMIT_SUBMISSIONS,
      anonymousPerIp: e.RATE_LIMIT_ANONYMOUS,
      activeTasksPerProject: e.MAX_ACTIVE_TASKS_PER_PROJECT,
      streamsPerUser: e.MAX_SSE_STREAMS_PER_USER,
    }),
    task: Object.freeze({
      consentTimeoutMs: e.CONSENT_TIMEOUT,
      retryInitialMs: e.DISPATCH_RETRY_INITIAL,
      retryMaxMs: e.DISPATCH_RETRY_MAX,
      toolTimeoutMs: e.TOOL_TIMEOUT,
      probeTimeoutMs: e.PROBE_TIMEOUT,
      probeFreshMs: e.PROBE_FRESH,
      heartbeatTimeoutMs: e.HEARTBEAT_TIMEOUT,
      spaceStartTimeoutMs: e.SPACE_START_TIMEOUT,
      spacePollMs: e.SPACE_POLL_INTERVAL,
    }),
    mcpSessions: Object.freeze({ enabled: e.MCP_SESSIONS === 'on', idleMs: e.MCP_SESSION_IDLE }),
    sseHeartbeatMs: e.SSE_HEARTBEAT,
    reconciler: Object.freeze({ intervalMs: e.RECONCILE_INTERVAL, graceMs: e.RECONCILE_GRACE }),
    encryptionKey: e.ENCRYPTION_KEY,
    encryptionKeysPrevious: Object.freeze([...e.ENCRYPTION_KEYS_PREVIOUS]),
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    workerMetricsPort: e.WORKER_METRICS_PORT,
    workerMaxCachedWorkflows: e.WORKER_MAX_CACHED_WORKFLOWS,
    workflowBundle: e.WORKFLOW_BUNDLE,
    trustProxy: e.TRUST_PROXY === 'true',
    adminLogins: Object.freeze((e.ADMIN_LOGINS ?? '').split(',').map((l) => l.trim()).filter(Boolean)),
    outbound: Object.freeze({ allowlist: e.OUTBOUND_ALLOWLIST }),
    nodeEnv: e.NODE_ENV,
    apiKeys: Object.freeze({ maxPerUser: e.API_KEYS_PER_USER, maxTtlMs: e.API_KEY_MAX_TTL }),
    ...(e.PUBLIC_URL ? { publicUrl: e.PUBLIC_URL.replace(/\/$/, '') } : {}),
  });
}

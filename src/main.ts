import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { Connection } from '@temporalio/client';
import { NativeConnection } from '@temporalio/worker';
import { Registry as MetricsRegistry } from 'prom-client';
import { SEARCH_ATTRIBUTE_TYPES } from '../workflows/contracts.ts';
import { createApp } from './api/app.ts';
import { createWorld, PROJECT_ROOT, type World } from './compose.ts';
import { ConfigError, databaseUrlGiven, loadConfig, loadLogSettings, requireSharedRedis, temporalCliDownload, type Config } from './config.ts';
import { createConfiguredTokenService } from './core/auth-tokens.ts';
import { createUserDirectory, ensureUser } from './core/users.ts';
import { rotateSealedSecrets } from './core/key-rotation.ts';
import { createDb, ensureDatabase } from './db/create-db.ts';
import { embeddedPostgresUrl, newEmbeddedPostgresPassword, startEmbeddedPostgres } from './db/embedded-postgres.ts';
import { migrateToLatest } from './db/migrate.ts';
import { createLogger, resolveLogFormat, type Logger } from './lib/logger.ts';
import { createSecretBox } from './lib/secret-box.ts';
import { collectProcessMetrics } from './lib/metrics.ts';
import { freePort } from './lib/free-port.ts';
import { acquireRunLock, DataDirInUseError, readRunLock } from './lib/run-lock.ts';
import { applyReset, EMBEDDED_POSTGRES_DIR, planReset, ResetRefusedError } from './local-reset.ts';
import { findOrBuildTemporalCli } from './temporal/cli-binary.ts';
import { startDevServer } from './temporal/dev-server.ts';
import { ensureNamespaceReady } from './temporal/namespace-setup.ts';
import { installTemporalRuntime } from './temporal/runtime-logging.ts';
import { bundleWorkflows, createTaskWorker } from './temporal/worker.ts';

// The composition root: the only module that reads process.env and decides which processes run.

const MIGRATIONS_DIR = path.join(PROJECT_ROOT, 'migrations');
const USAGE = `usage: orchestrator <command>
  dev                    everything on one machine: Temporal dev server, migrations, API and worker
  api                    the HTTP API
  worker                 the Temporal worker
  migrate                create the database if missing and apply migrations
  token --login NAME     print a bearer token for a local user (created if missing)
  reset [--yes]          delete what dev keeps in the data folder (embedded Postgres, Temporal state); asks first
  admin grant|revoke LOGIN   make a user a platform admin (curates public registry servers), or stop it
  keys rotate            re-seal every stored secret under ENCRYPTION_KEY (older keys: ENCRYPTION_KEYS_PREVIOUS)
  bundle [--out FILE]    prebuild the workflow bundle for WORKFLOW_BUNDLE (default data/workflow-bundle.js)`;

type Stopper = () => Promise<void>;

async function migrate(config: Config, log: Logger): Promise<void> {
  if (await ensureDatabase(config.databaseUrl)) log.info('created database');
  const db = createDb(config.databaseUrl, { maxConnections: 1 });
  try {
    const results = await migrateToLatest(db, MIGRATIONS_DIR);
    for (const r of results) log.info({ migration: r.migrationName, status: r.status }, 'migration');
  } finally {
    await db.destroy();
  }
}

function packageVersion(): string {
  return (JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
}

async function startApi(world: World): Promise<{ server: http.Server; stop: Stopper }> {
  const { config } = world;
  const app = createApp({
    ...world,
    log: world.log.child({ component: 'api' }),
    maxRequestBytes: config.limits.maxRequestBytes,
    sseHeartbeatMs: config.sseHeartbeatMs,
    trustProxy: config.trustProxy,
    publicUrl: config.publicUrl,
    version: packageVersion(),
  });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(config.port, config.host, resolve));
  return {
    server,
    stop: async () => {
      // SSE streams stay open until their task ends: closing the feed ends them, then idle sockets go.
      await Promise.all([world.feed.close(), world.runFeed.close()]);
      server.closeIdleConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function startWorker(world: World): Promise<{ done: Promise<void>; stop: Stopper }> {
  const { config } = world;
  const connection = await NativeConnection.connect({ address: config.temporal.address });
  const worker = await createTaskWorker({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: config.temporal.taskQueue,
    activities: world.activities,
    maxCachedWorkflows: config.workerMaxCachedWorkflows,
    ...(config.workflowBundle ? { workflowBundle: { codePath: path.resolve(config.workflowBundle) } } : {}),
  });
  const done = worker.run().finally(() => connection.close());
  return {
    done,
    stop: async () => {
      if (worker.getState() === 'RUNNING') worker.shutdown();
      await done;
    },
  };
}

async function serveWorkerMetrics(world: World): Promise<Stopper> {
  const port = world.config.workerMetricsPort;
  if (port === 0) return async () => undefined;
  const server = http.createServer(async (req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Type': world.metricsRegistry.contentType }).end(await world.metricsRegistry.metrics());
  });
  await new Promise<void>((resolve) => server.listen(port, world.config.host, resolve));
  return () => new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * One Ctrl-C reaches this process twice under `npm start`: from the terminal (the whole process group) and relayed by
 * tsx's launcher. A repeat within this window is that same keypress, not a request to skip the graceful stop (which
 * closes the embedded Postgres's files and releases the data folder).
 */
const DUPLICATE_SIGNAL_MS = 1000;

function onSignals(log: Logger, stop: () => Promise<void>): void {
  let stoppingSince: number | undefined;
  const handler = (signal: string) => {
    if (stoppingSince !== undefined) {
      if (Date.now() - stoppingSince < DUPLICATE_SIGNAL_MS) return;
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stoppingSince = Date.now();
    log.info({ signal }, 'shutting down');
    stop().then(
      () => process.exit(0),
      (err) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
}

/** A secret kept in the data folder, so `npm start` works on a fresh machine and survives restarts. */
function persistentSecret(file: string, make: () => string): string {
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  const value = make();
  writeFileSync(file, `${value}\n`, { mode: 0o600 });
  return value;
}

/**
 * One machine, nothing configured: secrets are generated once into the data folder, so `npm start` works on a
 * fresh clone and `orchestrator token` signs with the same key. Variables that are set always win.
 */
function localEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv & { DATA_DIR: string } {
  const dataDir = dataDirOf(env);
  mkdirSync(dataDir, { recursive: true });
  return {
    ...env,
    DATA_DIR: dataDir,
    JWT_SECRET: env.JWT_SECRET || (env.JWT_JWKS_URL ? undefined : persistentSecret(path.join(dataDir, 'jwt-secret'), () => randomBytes(32).toString('base64url'))),
    ENCRYPTION_KEY: env.ENCRYPTION_KEY || persistentSecret(path.join(dataDir, 'encryption-key'), () => randomBytes(32).toString('hex')),
    RESULT_STORE: env.RESULT_STORE || `file://${path.join(dataDir, 'results')}`,
  };
}

function dataDirOf(env: NodeJS.ProcessEnv): string {
  return path.resolve(PROJECT_ROOT, env.DATA_DIR || 'data');
}

/**
 * `token` and `admin` beside `npm start`. DATABASE_URL when it is set; otherwise the embedded Postgres: through the
 * running `dev` when there is one (PGlite's files are never opened by two processes), else opened here for the
 * length of the command (and migrated, so a token can be had before the first start).
 */
async function withLocalDatabase(devEnv: NodeJS.ProcessEnv & { DATA_DIR: string }, command: string, log: Logger, use: (config: Config) => Promise<void>): Promise<void> {
  if (databaseUrlGiven(devEnv)) return use(loadConfig(devEnv));
  const dataDir = devEnv.DATA_DIR;
  const running = readRunLock(dataDir);
  if (running?.databaseUrl) return use(loadConfig({ ...devEnv, DATABASE_URL: running.databaseUrl }));
  if (running) throw new UsageError(`orchestrator ${running.command} (pid ${running.pid}) is starting on ${dataDir}; try again in a moment`);
  const lock = acquireRunLock(dataDir, command);
  try {
    const pg = await startEmbeddedPostgres({ dataDir: path.join(dataDir, EMBEDDED_POSTGRES_DIR) });
    try {
      const config = loadConfig({ ...devEnv, DATABASE_URL: pg.url });
      await migrate(config, log.child({}, { level: 'warn' }));
      await use(config);
    } finally {
      await pg.stop();
    }
  } finally {
    lock.release();
  }
}

/** `orchestrator reset`: deletes what `dev` keeps in the data folder, after a confirmation; never under a running one. */
async function reset(env: NodeJS.ProcessEnv, opts: { yes: boolean }): Promise<void> {
  const dataDir = dataDirOf(env);
  const running = readRunLock(dataDir);
  if (running) throw new DataDirInUseError(dataDir, running);
  const plan = planReset(dataDir, { databaseUrlGiven: databaseUrlGiven(env) });
  const out = process.stdout;
  if (plan.targets.length === 0) {
    out.write(`nothing to reset in ${dataDir}\n${plan.notes.map((n) => `  ${n}\n`).join('')}`);
    return;
  }
  out.write(`reset deletes, in ${dataDir}:\n${plan.targets.map((t) => `  ${path.basename(t.path)}   ${t.label}\n`).join('')}${plan.notes.map((n) => `  ${n}\n`).join('')}`);
  if (!opts.yes) {
    if (!process.stdin.isTTY) throw new ResetRefusedError('reset refused: confirm on a terminal, or pass --yes');
    const rl = createInterface({ input: process.stdin, output: process.stdout });
    const answer = await rl.question('Type "yes" to delete them: ').finally(() => rl.close());
    if (answer.trim().toLowerCase() !== 'yes') throw new ResetRefusedError('reset not confirmed: nothing deleted');
  }
  applyReset(plan);
  out.write('done: the next npm start begins afresh\n');
}

/** Idempotent: the search attributes operators filter by must exist before any task starts. */
async function prepareNamespace(config: Config, retentionDays?: number): Promise<void> {
  const admin = await Connection.connect({ address: config.temporal.address });
  try {
    await ensureNamespaceReady(admin, { namespace: config.temporal.namespace, retentionDays, searchAttributes: SEARCH_ATTRIBUTE_TYPES });
  } finally {
    await admin.close();
  }
}

/** `npm start` runs MCP servers on this machine too, so loopback targets are allowed there unless NODE_ENV=production. */
const DEV_LOOPBACK = '127.0.0.0/8,::1/128';

async function dev(env: NodeJS.ProcessEnv, log: Logger): Promise<void> {
  const devEnv = localEnv(env);
  const dataDir = devEnv.DATA_DIR;
  // Without DATABASE_URL, Postgres runs in this process (PGlite, files in DATA_DIR/postgres) on a loopback port
  // chosen now, so the configuration is complete and validated before anything starts.
  const embedded = databaseUrlGiven(devEnv) ? undefined : { dir: path.join(dataDir, EMBEDDED_POSTGRES_DIR), port: await freePort(), password: newEmbeddedPostgresPassword() };
  const configEnv = embedded ? { ...devEnv, DATABASE_URL: embeddedPostgresUrl('127.0.0.1', embedded.port, embedded.password) } : devEnv;
  let config = loadConfig(configEnv);
  const loopbackAllowed = config.nodeEnv !== 'production';
  if (loopbackAllowed) {
    config = loadConfig({ ...configEnv, OUTBOUND_ALLOWLIST: [configEnv.OUTBOUND_ALLOWLIST, DEV_LOOPBACK].filter(Boolean).join(',') });
    log.info({ allowed: DEV_LOOPBACK }, 'dev mode: registered MCP servers may be on loopback (NODE_ENV=production turns this off)');
  }
  const [host, port] = splitAddress(config.temporal.address);

  const lock = acquireRunLock(dataDir, 'dev');
  const stops: Stopper[] = [async () => lock.release()];
  const stopAll = async () => {
    for (const stop of stops.reverse()) await stop().catch((err) => log.error({ err }, 'stop failed'));
  };
  onSignals(log, stopAll);
  try {
    // The embedded Postgres (a first start creates its files: the longest step) starts beside the Temporal dev server.
    const postgres = embedded
      ? startEmbeddedPostgres({ dataDir: embedded.dir, port: embedded.port, password: embedded.password }).then((pg) => {
          stops.push(pg.stop);
          lock.update({ databaseUrl: pg.url });
          log.info({ dataDir: embedded.dir }, 'embedded Postgres ready');
          return pg;
        })
      : undefined;
    postgres?.catch(() => undefined); // awaited below; a failure must not count as unhandled meanwhile
    // Settled either way before stopAll runs, so a failed Temporal start never leaves PGlite's files open.
    const temporal = await startTemporal(config, { env, host, port, dataDir, log }).finally(() => postgres?.catch(() => undefined));
    stops.splice(1, 0, () => temporal.stop());
    await postgres;
    // The persistent dev instance keeps finished tasks for a week, not the 24 h a new namespace gets.
    await prepareNamespace(config, 7);
    await migrate(config, log);

    installTemporalRuntime(log, 'WARN');
    const world = await createWorld(config, { log, metricsRegistry: withProcessMetrics() });
    stops.push(() => world.close());
    const worker = await startWorker(world);
    stops.push(worker.stop);
    const api = await startApi(world);
    stops.push(api.stop);
    world.reconciler.start();

    const apiUrl = `http://${config.host}:${config.port}`;
    process.stdout.write(
      [
        '',
        'orchestrator is running',
        `  API              ${apiUrl}   (health: ${apiUrl}/readyz, metrics: ${apiUrl}/metrics)`,
        `  Postgres         ${embedded ? `embedded (PGlite), data in ${embedded.dir}` : withoutPassword(config.databaseUrl)}`,
        `  Temporal         ${temporal.address}   namespace "${config.temporal.namespace}", task queue "${config.temporal.taskQueue}"`,
        `  Temporal state   ${path.join(dataDir, 'temporal.db')}`,
        `  Temporal Web UI  ${temporal.uiUrl ?? '(headless)'}`,
        `  Redis            ${config.redisUrl ? redisAddress(config.redisUrl) : 'in process: caches, slots, limits and live events in this process only (set REDIS_URL to share them)'}`,
        `  data folder      ${dataDir}   (start over: npm run orchestrator -- reset)`,
        `  MCP targets      public addresses${loopbackAllowed ? ` and loopback ${DEV_LOOPBACK} (dev only; NODE_ENV=production turns it off)` : ''}, plus OUTBOUND_ALLOWLIST`,
        `  get a token      npm run -s orchestrator -- token --login alice`,
        '  stop             Ctrl-C',
        '',
      ].join('\n'),
    );
  } catch (err) {
    await stopAll();
    throw err;
  }
}

async function startTemporal(config: Config, opts: { env: NodeJS.ProcessEnv; host: string; port: number; dataDir: string; log: Logger }) {
  const { log } = opts;
  // Downloading by default: a first run on a machine with only Node then needs no Go and no 9-minute build.
  const download = temporalCliDownload(opts.env, { byDefault: true });
  const cli = await findOrBuildTemporalCli({ env: opts.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log: (m) => log.info(m), download });
  return startDevServer({
    cliPath: cli,
    dbFile: path.join(opts.dataDir, 'temporal.db'),
    ip: opts.host,
    port: opts.port,
    uiPort: config.temporal.uiPort,
    namespace: config.temporal.namespace,
    log: (m) => log.info({ component: 'temporal-dev-server' }, m),
  });
}

/** A database URL as the banner shows it: a password never reaches the terminal. */
function withoutPassword(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  if (url.password) url.password = '';
  return url.toString();
}

/** Prints counts and row identities only: never a key or a value. Exits non-zero while some value stays unreadable. */
async function rotateKeys(config: Config): Promise<void> {
  const box = createSecretBox({ current: config.encryptionKey, previous: config.encryptionKeysPrevious });
  const db = createDb(config.databaseUrl, { maxConnections: 1 });
  try {
    const report = await rotateSealedSecrets(db, box);
    process.stdout.write(`re-sealed ${report.resealed} value(s) under key ${box.currentKeyId}; ${report.alreadyCurrent} already current\n`);
    if (report.unreadable.length > 0) {
      process.stderr.write(
        `${report.unreadable.length} value(s) open with none of the keys given and were left as they are ` +
          `(add the missing key to ENCRYPTION_KEYS_PREVIOUS, or bind again):\n${report.unreadable.map((u) => `  ${u}\n`).join('')}`,
      );
      process.exitCode = 1;
    }
  } finally {
    await db.destroy();
  }
}

/** Host and port only: a Redis URL may carry a password. */
function redisAddress(url: string): string {
  const u = new URL(url);
  return `${u.protocol}//${u.host}`;
}

function splitAddress(address: string): [string, number] {
  const i = address.lastIndexOf(':');
  return [address.slice(0, i), Number(address.slice(i + 1))];
}

function withProcessMetrics(): MetricsRegistry {
  const registry = new MetricsRegistry();
  collectProcessMetrics(registry);
  return registry;
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const env = process.env;
  const logSettings = loadLogSettings(env);
  const log = createLogger({ level: logSettings.level, name: 'orchestrator', format: resolveLogFormat(logSettings.format, process.stdout.isTTY === true) });

  switch (command) {
    case 'dev':
      return dev(env, log);
    case 'migrate':
      return migrate(loadConfig(env), log);
    case 'token': {
      const { values } = parseArgs({ args: rest, options: { login: { type: 'string' } } });
      if (!values.login || !/^[A-Za-z0-9][\w.-]{0,62}$/.test(values.login)) throw new UsageError('token needs --login NAME (letters, digits, . _ -)');
      const login = values.login;
      return withLocalDatabase(localEnv(env), 'token', log, async (config) => {
        // Dev tokens skip sign-in entirely: fine on a laptop, not on a shared deployment unless the operator says so.
        if (config.nodeEnv === 'production' && !config.auth.allowDevTokens) {
          throw new UsageError('token --login is refused when NODE_ENV=production (set ALLOW_DEV_TOKENS=true to allow it); sign in with GitHub or Hugging Face instead');
        }
        const db = createDb(config.databaseUrl, { maxConnections: 1 });
        try {
          const user = await ensureUser(db, login);
          process.stdout.write(`${await (await createConfiguredTokenService(config.jwt)).sign({ sub: user.id, login: user.login })}\n`);
        } finally {
          await db.destroy();
        }
      });
    }
    case 'admin': {
      const [action, login] = rest;
      if ((action !== 'grant' && action !== 'revoke') || !login || !/^[A-Za-z0-9][\w.-]{0,62}$/.test(login)) {
        throw new UsageError('admin needs grant|revoke and a LOGIN');
      }
      return withLocalDatabase(localEnv(env), 'admin', log, async (config) => {
        const db = createDb(config.databaseUrl, { maxConnections: 1 });
        try {
          const found = await createUserDirectory({ db, adminLogins: [] }).setAdmin(login, action === 'grant');
          if (!found) throw new UsageError(`no user with the login "${login}" (they appear once they have signed in or been given a token)`);
          process.stdout.write(`${login} ${action === 'grant' ? 'is now' : 'is no longer'} a platform admin${config.adminLogins.includes(login) ? ' (also listed in ADMIN_LOGINS, which still makes them one)' : ''}\n`);
        } finally {
          await db.destroy();
        }
      });
    }
    case 'reset': {
      const { values } = parseArgs({ args: rest, options: { yes: { type: 'boolean', short: 'y' } } });
      return reset(env, { yes: values.yes === true });
    }
    case 'keys': {
      if (rest[0] !== 'rotate' || rest.length !== 1) throw new UsageError('keys needs a subcommand: keys rotate');
      return rotateKeys(loadConfig(env));
    }
    case 'api': {
      const config = loadConfig(env);
      requireSharedRedis(config, 'orchestrator api');
      await prepareNamespace(config);
      const world = await createWorld(config, { log, metricsRegistry: withProcessMetrics() });
      const api = await startApi(world);
      world.reconciler.start();
      log.info({ port: world.config.port }, 'API listening');
      onSignals(log, async () => {
        await api.stop();
        await world.close();
      });
      return;
    }
    case 'worker': {
      const config = loadConfig(env);
      requireSharedRedis(config, 'orchestrator worker');
      await prepareNamespace(config);
      installTemporalRuntime(log, 'WARN');
      const world = await createWorld(config, { log, metricsRegistry: withProcessMetrics() });
      const stopMetrics = await serveWorkerMetrics(world);
      const worker = await startWorker(world);
      world.reconciler.start();
      log.info({ taskQueue: config.temporal.taskQueue }, 'worker running');
      onSignals(log, async () => {
        await worker.stop();
        await stopMetrics();
        await world.close();
      });
      await worker.done;
      return;
    }
    case 'bundle': {
      // Production workers load this file (WORKFLOW_BUNDLE) instead of running webpack at every start.
      const { values } = parseArgs({ args: rest, options: { out: { type: 'string' } } });
      const out = path.resolve(values.out ?? path.join(PROJECT_ROOT, 'data', 'workflow-bundle.js'));
      mkdirSync(path.dirname(out), { recursive: true });
      writeFileSync(out, (await bundleWorkflows()).code);
      process.stdout.write(`${out}\n`);
      return;
    }
    default:
      throw new UsageError(command ? `unknown command "${command}"` : 'no command given');
  }
}

class UsageError extends Error {}

main(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof DataDirInUseError || err instanceof ResetRefusedError) {
    process.stderr.write(`${err.message}\n${err instanceof UsageError ? USAGE : ''}\n`);
  } else {
    process.stderr.write(`orchestrator failed to start: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});

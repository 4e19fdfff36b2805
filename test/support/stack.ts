import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { Registry } from 'prom-client';
import { createApp } from '../../src/api/app.ts';
import { createWorld, type World } from '../../src/compose.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import { ensureUser } from '../../src/core/users.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { createTaskWorker } from '../../src/temporal/worker.ts';
import { sharedTemporal } from './shared-temporal.ts';
import { createEmbeddedTestDb, EMBEDDED_TEST_STORES } from './embedded-test-db.ts';
import { createTestDb, REDIS_TEST_URL, type TestDb } from './test-db.ts';

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

/**
 * A test run without Redis: TEST_IN_PROCESS_REDIS=1 makes every stack keep what Redis would in its own process (as
 * `npm start` does without REDIS_URL). Tests that look inside Redis (world.redis) do not belong in such a run.
 */
export function inProcessRedisByDefault(): boolean {
  return /^(1|true|yes)$/i.test(process.env.TEST_IN_PROCESS_REDIS ?? '');
}

/**
 * The whole system for one test file: a fresh database, its own Redis prefix and task queue on the shared Temporal
 * dev server, an in-process worker and the API on a free port — built with the same createWorld as `npm start`.
 * `inProcessRedis` (default: TEST_IN_PROCESS_REDIS) leaves REDIS_URL unset: no Redis at all, one process's memory.
 */
export async function startStack(opts: { env?: Record<string, string>; worker?: boolean; maxConcurrentActivities?: number; inProcessRedis?: boolean } = {}) {
  const inProcessRedis = opts.inProcessRedis ?? (inProcessRedisByDefault() || EMBEDDED_TEST_STORES);
  const [temporal, testDb]: [Awaited<ReturnType<typeof sharedTemporal>>, TestDb] = await Promise.all([
    sharedTemporal(),
    EMBEDDED_TEST_STORES ? createEmbeddedTestDb() : createTestDb('e2e'),
  ]);
  const resultsDir = await mkdtemp(path.join(os.tmpdir(), 'orch-results-'));
  const port = await freePort();
  const tag = randomBytes(4).toString('hex');
  const env: Record<string, string> = {
    DATABASE_URL: testDb.url,
    // Empty counts as unset: the world then keeps caches, slots, limits and live events in memory.
    REDIS_URL: inProcessRedis ? '' : REDIS_TEST_URL,
    REDIS_PREFIX: `test:${tag}:`,
    TEMPORAL_ADDRESS: temporal.address,
    TEMPORAL_NAMESPACE: temporal.namespace,
    TASK_QUEUE: `tasks-${tag}`,
    JWT_SECRET: randomBytes(32).toString('hex'),
    ENCRYPTION_KEY: randomBytes(32).toString('hex'),
    PORT: String(port),
    RESULT_STORE: `file://${resultsDir}`,
    LOG_LEVEL: 'debug',
    DISPATCH_RETRY_INITIAL: '100ms',
    DISPATCH_RETRY_MAX: '400ms',
    PROBE_TIMEOUT: '1500ms',
    HEARTBEAT_TIMEOUT: '3s',
    CONSENT_TIMEOUT: '60s',
    SSE_HEARTBEAT: '1s',
    // Every MCP server of the tests listens on 127.0.0.1.
    OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128',
    // Limits stay on, so every test runs through them, but far above what any test sends; tests of the limits set
    // small ones through opts.env.
    RATE_LIMIT_REQUESTS: '1000000',
    RATE_LIMIT_SUBMISSIONS: '1000000',
    RATE_LIMIT_ANONYMOUS: '1000000',
    MAX_ACTIVE_TASKS_PER_PROJECT: '100000',
    MAX_SSE_STREAMS_PER_USER: '100000',
    ...opts.env,
  };
  const config: Config = loadConfig(env);
  // Logs go to memory: tests can assert on them (no secrets) and print them when something fails.
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      cb();
    },
  });
  const log = createLogger({ level: config.logLevel, name: 'test', destination: sink });
  const world: World = await createWorld(config, { log, metricsRegistry: new Registry() });
  if (inProcessRedis && world.storesMode !== 'in process') {
    await world.close();
    throw new Error(`this stack must not reach Redis, but its stores are in ${world.storesMode}`);
  }

  let worker: Worker | undefined;
  let workerRun: Promise<void> | undefined;
  let workerConnection: NativeConnection | undefined;
  async function startWorker() {
    workerConnection = await NativeConnection.connect({ address: temporal.address });
    worker = await createTaskWorker({
      connection: workerConnection,
      namespace: temporal.namespace,
      taskQueue: config.temporal.taskQueue,
      activities: world.activities,
      workflowBundle: temporal.bundle,
      ...(opts.maxConcurrentActivities ? { maxConcurrentActivities: opts.maxConcurrentActivities } : {}),
    });
    workerRun = worker.run();
  }
  if (opts.worker !== false) await startWorker();

  const app = createApp({ ...world, maxRequestBytes: config.limits.maxRequestBytes, sseHeartbeatMs: config.sseHeartbeatMs, trustProxy: config.trustProxy });
  const server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${port}`;

  async function token(login: string): Promise<string> {
    const user = await ensureUser(world.db, login);
    return world.tokens.sign({ sub: user.id, login: user.login });
  }

  async function api<T = any>(method: string, p: string, o: { token?: string; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}), ...o.headers };
    let body: string | undefined;
    if (o.rawBody !== undefined) body = o.rawBody;
    else if (o.body !== undefined) {
      body = JSON.stringify(o.body);
      headers['Content-Type'] ??= 'application/json';
    }
    const res = await fetch(`${url}${p}`, { method, headers, body });
    const text = await res.text();
    let parsed: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T, text };
  }

  /** Polls the API until the task reaches one of the statuses. */
  async function waitForStatus(tok: string, taskId: string, statuses: string[], timeoutMs = 30_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await api('GET', `/v1/tasks/${taskId}`, { token: tok });
      if (statuses.includes(r.body.status)) return r.body;
      if (Date.now() > deadline) throw new Error(`task ${taskId} stayed ${r.body.status}, wanted ${statuses.join('|')}: ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  return {
    url,
    config,
    routeTable: app.routeTable,
    world,
    logLines,
    token,
    api,
    waitForStatus,
    startWorker,
    async stopWorker() {
      worker?.shutdown();
      await workerRun;
      await workerConnection?.close();
      worker = undefined;
    },
    async stop() {
      if (worker) {
        worker.shutdown();
        await workerRun;
        await workerConnection?.close();
      }
      await world.feed.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await world.close();
      await testDb.drop();
      await rm(resultsDir, { recursive: true, force: true });
    },
  };
}

export type Stack = Awaited<ReturnType<typeof startStack>>;

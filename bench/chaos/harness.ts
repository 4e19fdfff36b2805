// One chaos run: the system as separate processes on private services, a steady workload, faults injected while it
// runs, then a bounded wait for every task to end and the checks of checks.ts.

import { randomBytes } from 'node:crypto';
import { chmodSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { loadConfig, temporalCliDownload } from '../../src/config.ts';
import { createTokenService } from '../../src/core/auth-tokens.ts';
import { ensureUser } from '../../src/core/users.ts';
import type { Db } from '../../src/db/create-db.ts';
import type { Database } from '../../src/db/schema.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { findOrBuildTemporalCli } from '../../src/temporal/cli-binary.ts';
import { verify, type CheckResult, type LostTask } from './checks.ts';
import { run, startPostgres, startRedis, startTemporal, type RestartableService } from './infra.ts';
import { startTappedMcpServer, type TappedMcpServer } from './mcp-tap.ts';
import { apiReady, crashLine, SupervisedProcess, workerReady, type UnexpectedExit } from './processes.ts';
import { answerConsents, apiClient, buildWorkload, submitTask, type TaskRecord } from './workload.ts';

export interface ChaosOptions {
  tasks: number;
  /** Submissions per second. */
  rate: number;
  /** The worker is SIGKILLed this long (uniformly between the two) after each time it became ready. */
  workerKillEveryMs: [number, number];
  /** Stop killing the worker after this many kills (default: keep killing while submissions run). */
  maxWorkerKills?: number;
  /** How long Postgres, Redis and the Temporal dev server stay down when restarted. */
  serviceDownMs: number;
  /** How long to wait, after the last submission and fault, for every task to end. */
  drainTimeoutMs: number;
  log: (message: string) => void;
}

export interface InjectedFault {
  kind: string;
  atMs: number;
  /** From the fault until the component served again. */
  downMs: number;
  note?: string;
}

export interface ChaosReport {
  options: Omit<ChaosOptions, 'log'>;
  faults: InjectedFault[];
  /** Exits no one asked for (a crash caused by a fault elsewhere), per role. */
  unplannedExits: Array<{ role: string } & UnexpectedExit>;
  failedStarts: Record<string, number>;
  checks: CheckResult[];
  lost: LostTask[];
  statusCounts: Record<string, number>;
  durations: { setupMs: number; submitMs: number; drainMs: number; verifyMs: number; totalMs: number };
  /** False when a check failed or a task was lost. */
  ok: boolean;
}

export const DEFAULT_OPTIONS: Omit<ChaosOptions, 'log'> = {
  tasks: 500,
  rate: 2,
  workerKillEveryMs: [3000, 5000],
  serviceDownMs: 3000,
  drainTimeoutMs: 4 * 60_000,
};

const INLINE_MAX_BYTES = 16 * 1024;
/** Tasks submitted once, without retry, during the Temporal outage (on top of `tasks`). */
const ONE_SHOTS = 3;
/**
 * When in the submission window each service fault is due (they run one after another). The API is killed during the
 * Temporal outage, while it holds submissions it has stored but cannot start: the crash the issue names.
 */
const FAULT_PLAN = [
  { kind: 'Temporal dev server restart', at: 0.25 },
  { kind: 'Postgres restart (immediate stop)', at: 0.55 },
  { kind: 'Redis restart (SIGKILL, no persistence)', at: 0.75 },
] as const;

type Stop = [string, () => Promise<unknown>];

export async function runChaos(options: ChaosOptions): Promise<ChaosReport> {
  const { log } = options;
  const started = Date.now();
  const clock = () => Date.now() - started;
  const runTag = randomBytes(4).toString('hex');
  const stops: Stop[] = [];
  const supervised: SupervisedProcess[] = [];
  const services: RestartableService[] = [];
  let runDir: string | undefined;

  // Ctrl-C or a kill of the run: nothing it started may outlive it.
  const killEverythingNow = () => {
    for (const p of supervised) p.killHard();
    for (const s of services) s.killNowSync();
    if (runDir) rmSync(runDir, { recursive: true, force: true });
    runDir = undefined;
  };
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const [what, stop] of stops.reverse()) {
        await stop().catch((err: unknown) => log(`cleanup: ${what}: ${(err as Error).message}`));
      }
    })());
  // On a signal there is no time for graceful stops (a wrapper such as npx may follow up with SIGKILL): every process
  // and service goes at once, synchronously.
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: stopping every process and service of the run`);
    killEverythingNow();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  process.once('exit', killEverythingNow);

  try {
    runDir = await mkdtemp(path.join(os.tmpdir(), 'orch-chaos-'));
    chmodSync(runDir, 0o755);
    const dir = runDir;
    stops.push(['temp folder', async () => rmSync(dir, { recursive: true, force: true })]);
    const resultsDir = path.join(dir, 'results');
    const bundlePath = path.join(dir, 'workflow-bundle.js');
    await mkdir(resultsDir);
    await mkdir(path.join(dir, 'pg'));
    await mkdir(path.join(dir, 'temporal'));

    // --- private services, MCP servers and the workflow bundle, side by side ---------------------------------------
    log('starting a private Postgres, Redis and Temporal dev server, the MCP servers, and building the workflow bundle');
    const cli = await findOrBuildTemporalCli({ env: process.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log, download: temporalCliDownload(process.env, { byDefault: false }) });
    const tracked = <T extends RestartableService>(name: string, s: T): T => {
      services.push(s);
      stops.push([name, () => s.stop()]);
      return s;
    };
    const trackedMcp = (name: string, t: TappedMcpServer): TappedMcpServer => {
      stops.push([`MCP server ${name}`, () => t.server.stop()]);
      return t;
    };
    const [postgres, redis, temporal, oracle, space, fallbackSpace] = await Promise.all([
      startPostgres(path.join(dir, 'pg')).then((s) => tracked('Postgres', s)),
      startRedis().then((s) => tracked('Redis', s)),
      startTemporal({ cliPath: cli, dir: path.join(dir, 'temporal'), log: () => undefined }).then((s) => tracked('Temporal dev server', s)),
      startTappedMcpServer('oracle').then((t) => trackedMcp('oracle', t)),
      startTappedMcpServer('space').then((t) => trackedMcp('space', t)),
      startTappedMcpServer('fallback-space').then((t) => trackedMcp('fallback-space', t)),
      run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'bundle', '--out', bundlePath], { cwd: PROJECT_ROOT, timeoutMs: 300_000 }).then(() => undefined),
    ]);

    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const env: Record<string, string> = {
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      REDIS_PREFIX: 'chaos:',
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: 'default',
      TASK_QUEUE: 'chaos-tasks',
      JWT_SECRET: randomBytes(32).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      PORT: String(port),
      HOST: '127.0.0.1',
      DATA_DIR: dir,
      RESULT_STORE: `file://${resultsDir}`,
      RESULT_INLINE_MAX_BYTES: String(INLINE_MAX_BYTES),
      WORKFLOW_BUNDLE: bundlePath,
      WORKER_METRICS_PORT: '0',
      LOG_LEVEL: 'info',
      // A worker killed mid-call is noticed after this long; production's 30 s would stretch the run, not change it.
      HEARTBEAT_TIMEOUT: '3s',
      // Long enough that a grant delayed by an API restart still arrives; a task that asks for consent it should not
      // need still ends (failed) within the run.
      CONSENT_TIMEOUT: '90s',
      SSE_HEARTBEAT: '2s',
      // Every MCP server of the run listens on 127.0.0.1.
      OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128',
      RATE_LIMITS: 'on',
      RATE_LIMIT_REQUESTS: '10000000',
      RATE_LIMIT_SUBMISSIONS: '10000000',
      RATE_LIMIT_ANONYMOUS: '10000000',
      MAX_ACTIVE_TASKS_PER_PROJECT: '10000000',
      MAX_SSE_STREAMS_PER_USER: '10000000',
      NODE_ENV: 'development',
    };
    const childEnv = { ...process.env, ...env };

    log('migrating');
    await run(process.execPath, ['--import', 'tsx', 'src/main.ts', 'migrate'], { cwd: PROJECT_ROOT, env: childEnv, timeoutMs: 120_000 });

    const worker = new SupervisedProcess('worker', childEnv, workerReady, clock, log);
    const api = new SupervisedProcess('api', childEnv, apiReady(port), clock, log);
    for (const p of [api, worker]) {
      supervised.push(p);
      stops.push([p.role, () => p.stop()]);
    }
    log('starting the API and worker processes');
    await Promise.all([api.start(), worker.start()]);

    // --- a user, two projects, one server: the Space of `main` is up, that of `fallback` is down -------------------
    const db = openDb(postgres.url);
    stops.push(['database pool', () => db.destroy()]);
    const user = await ensureUser(db, 'chaos');
    const token = await createTokenService(loadConfig(env).jwt).sign({ sub: user.id, login: user.login });
    const call = apiClient(apiUrl, token);
    const must = async (method: string, p: string, body: unknown, want: number) => {
      const r = await call(method, p, { body });
      if (r.status !== want) throw new Error(`${method} ${p} → ${r.status}: ${r.text.slice(0, 300)}`);
      return r.body;
    };
    const mainProject = (await must('POST', '/v1/projects', { name: 'chaos main' }, 201)).id as string;
    const fallbackProject = (await must('POST', '/v1/projects', { name: 'chaos fallback' }, 201)).id as string;
    await must('POST', '/v1/mcps', { name: 'tools', oracleUrl: oracle.server.url, canRunOnUserSpace: true, fallbackToOracle: true }, 201);
    await must('PUT', `/v1/projects/${mainProject}/spaces/tools`, { url: space.server.url }, 200);
    await must('PUT', `/v1/projects/${fallbackProject}/spaces/tools`, { url: fallbackSpace.server.url }, 200);
    fallbackSpace.server.mode = 'down';
    const setupMs = clock();

    // --- workload and faults --------------------------------------------------------------------------------------------
    // The last few are sent once each while the Temporal dev server is down, by a client that does not retry.
    const tasks: TaskRecord[] = buildWorkload(options.tasks + ONE_SHOTS, runTag, INLINE_MAX_BYTES).map((s) => ({
      ...s,
      oneShot: s.index >= options.tasks,
      submitAttempts: 0,
      replayed: false,
      submitErrors: [],
      consentAttempts: 0,
      consentAnswers: [],
    }));
    const windowMs = (options.tasks / options.rate) * 1000;
    log(`submitting ${options.tasks} tasks over ${(windowMs / 1000).toFixed(0)} s while injecting faults`);
    const faults: InjectedFault[] = [];
    const stopConsents = new AbortController();
    const consents = answerConsents(call, tasks, fallbackProject, clock, stopConsents.signal);
    const submitStart = Date.now();
    let accepted = 0;
    const projectOf = (t: TaskRecord) => (t.project === 'main' ? mainProject : fallbackProject);
    const submissions = Promise.all(
      tasks.filter((t) => !t.oneShot).map(async (t, i) => {
        await sleep(Math.max(0, submitStart + (i * 1000) / options.rate - Date.now()));
        await submitTask(call, t, projectOf(t), clock, 180_000);
        if (t.id && ++accepted % 50 === 0) log(`${accepted} tasks accepted`);
      }),
    );

    let submissionsDone = false;
    void submissions.finally(() => (submissionsDone = true));
    const killer = (async () => {
      let kills = 0;
      const [lo, hi] = options.workerKillEveryMs;
      while (!submissionsDone && (options.maxWorkerKills === undefined || kills < options.maxWorkerKills)) {
        await sleep(lo + Math.random() * (hi - lo));
        if (submissionsDone) break;
        const at = clock();
        const downMs = await worker.crashAndRestart();
        kills++;
        faults.push({ kind: 'worker SIGKILL', atMs: at, downMs });
      }
    })();

    const oneShotAnswers: Array<Promise<void>> = [];
    let apiRestart: Promise<void> = Promise.resolve();
    const serviceFaults = (async () => {
      for (const f of FAULT_PLAN) {
        await sleep(Math.max(0, submitStart + f.at * windowMs - Date.now()));
        const at = clock();
        log(`fault: ${f.kind}`);
        let downMs: number;
        if (f.kind.startsWith('Temporal')) {
          const whileDown = async () => {
            await sleep(Math.min(500, options.serviceDownMs / 4));
            // Sent once each and not awaited here: their answers wait on Temporal, which must not stretch the outage.
            const oneShot = tasks.filter((t) => t.oneShot);
            oneShotAnswers.push(...oneShot.map((t) => submitTask(call, t, projectOf(t), clock, 0)));
            await storedOrTimeout(db, oneShot.map((t) => t.idempotencyKey), 5000);
            const apiAt = clock();
            log('fault: API SIGKILL + restart (with submissions stored but not started)');
            apiRestart = api.crashAndRestart().then((apiDown) => void faults.push({ kind: 'API SIGKILL + restart', atMs: apiAt, downMs: apiDown, note: 'during the Temporal outage' }));
          };
          downMs = await temporal.restart(options.serviceDownMs, whileDown);
          await apiRestart;
        }
        else if (f.kind.startsWith('Postgres')) downMs = await postgres.restart(options.serviceDownMs);
        else downMs = await redis.restart(options.serviceDownMs);
        faults.push({ kind: f.kind, atMs: at, downMs });
      }
    })();

    await Promise.all([submissions, killer, serviceFaults]);
    await Promise.all(oneShotAnswers);
    const submitMs = Date.now() - submitStart;
    log(`submissions and faults done after ${(submitMs / 1000).toFixed(0)} s; waiting up to ${(options.drainTimeoutMs / 1000).toFixed(0)} s for every task to end`);

    // --- drain ---------------------------------------------------------------------------------------------------------
    const drainStart = Date.now();
    const keyPrefix = `chaos-${runTag}-`;
    let open = Infinity;
    while (Date.now() - drainStart < options.drainTimeoutMs) {
      open = await openTasks(db, keyPrefix).catch(() => Infinity);
      if (open === 0) break;
      log(`${open} tasks not finished yet`);
      await sleep(3000);
    }
    const drainMs = Date.now() - drainStart;
    stopConsents.abort();
    await consents;

    // --- checks ----------------------------------------------------------------------------------------------------------
    log('checking');
    const verifyStart = Date.now();
    const verdict = await verify({
      db,
      api: call,
      apiUrl,
      token,
      tasks,
      keyPrefix,
      calls: { oracle: oracle.calls, space: space.calls, fallbackSpace: fallbackSpace.calls },
    });
    const verifyMs = Date.now() - verifyStart;
    faults.sort((a, b) => a.atMs - b.atMs);
    const unplannedExits = supervised.flatMap((p) => p.unexpectedExits.map((e) => ({ role: p.role, ...e })));
    // Nothing is lost when a process manager restarts a crashed process, but every stream and request it held is.
    verdict.checks.push({
      name: 'no process crashed on its own',
      held: unplannedExits.length === 0,
      detail: `${unplannedExits.length} unplanned exits (${supervised.map((p) => `${p.role} ${p.unexpectedExits.length}`).join(', ')})`,
      examples: unplannedExits.slice(0, 5).map((e) => `${e.role} at ${(e.atMs / 1000).toFixed(1)} s: ${crashLine(e)}`),
    });
    return {
      options: { tasks: options.tasks, rate: options.rate, workerKillEveryMs: options.workerKillEveryMs, maxWorkerKills: options.maxWorkerKills, serviceDownMs: options.serviceDownMs, drainTimeoutMs: options.drainTimeoutMs },
      faults,
      unplannedExits,
      failedStarts: Object.fromEntries(supervised.map((p) => [p.role, p.failedStarts.length])),
      checks: verdict.checks,
      lost: verdict.lost,
      statusCounts: verdict.statusCounts,
      durations: { setupMs, submitMs, drainMs, verifyMs, totalMs: clock() },
      ok: verdict.lost.length === 0 && verdict.checks.every((c) => c.held || c.informational),
    };
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', killEverythingNow);
  }
}

/** The run's own pool: an idle connection cut by the Postgres restart must not crash the harness. */
function openDb(url: string): Db {
  const pool = new pg.Pool({ connectionString: url, max: 4 });
  pool.on('error', () => undefined);
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
}

/** Waits (bounded) until a row exists for each key: the API has stored those submissions. */
async function storedOrTimeout(db: Db, keys: string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const row = await db
      .selectFrom('tasks')
      .select(sql<number>`count(*)`.as('n'))
      .where('idempotency_key', 'in', keys)
      .executeTakeFirst()
      .catch(() => undefined);
    if (Number(row?.n) === keys.length) return;
    await sleep(100);
  }
}

async function openTasks(db: Db, keyPrefix: string): Promise<number> {
  const row = await db
    .selectFrom('tasks')
    .select(sql<number>`count(*)`.as('n'))
    .where('idempotency_key', 'like', `${keyPrefix}%`)
    .where('status', 'not in', ['succeeded', 'failed', 'canceled'])
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

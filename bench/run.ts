// `npm run bench`: N light tasks at concurrency C through the whole stack (HTTP API → Temporal workflow → MCP server
// → stored result), and in the same run on the same Temporal dev server a bare baseline (one workflow, one no-op
// activity, started with the Temporal client) at the same N and C. Speed is reported, never asserted.
//
//   npm run bench -- --n 200 --c 20 --warmup 10 --rounds 2 --submits 100
//   (or BENCH_N, BENCH_C, BENCH_WARMUP, BENCH_ROUNDS, BENCH_MAX_JOBS, BENCH_SUBMITS)
//   --rows core,submit,get,sse,consent,kg   which rows to run (default: all; `--rows core` is the quick run)
//   BENCH_KG_ENTITIES                    entities of the kg row's generated graph (default 5000; 3 relations each)
//   --sessions on|off                    MCP session reuse in the worker (MCP_SESSIONS), to measure that lever alone
//   --cpu-prof DIR                       write V8 CPU profiles of the API and worker into DIR (see bench/cpu-summary.ts)
//
// The two systems are measured in alternating rounds (baseline, orchestrator, orchestrator, baseline, ...), so a
// change in machine load during the run weighs on both sides alike.
//
// Then the cost of the per-tenant limits: a second API process with RATE_LIMITS=off on the same database and worker,
// and `submits` POST /v1/tasks per side (202 only, not waiting for the task), alternating on/off in the same ABBA
// rounds. The measured API keeps its limits on, set high enough never to refuse, so every check runs.

import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { Redis } from 'ioredis';
import { loadConfig } from '../src/config.ts';
import { createTokenService } from '../src/core/auth-tokens.ts';
import { ensureUser } from '../src/core/users.ts';
import { freePort } from '../src/lib/free-port.ts';
import { startTestMcpServer, type TestMcpServer } from '../test/support/mcp-test-server.ts';
import { sharedTemporal, stopSharedTemporal } from '../test/support/shared-temporal.ts';
import { readEvents } from '../test/support/sse-client.ts';
import { createTestDb, REDIS_TEST_URL, type TestDb } from '../test/support/test-db.ts';
import type { BaselineActivities, baselineWorkflow } from './baseline-workflow.ts';
import { consentRow, getTaskRow, sseRow, type RowContext } from './extra-rows.ts';
import { kgRow } from './kg-row.ts';
import { taskPhases, type TaskMarks } from './task-phases.ts';
import { cpuSnapshot, CpuTally } from './cpu-accounting.ts';
import { fmt, procArgv0, procStatusKb, resetPeakRss, runClosedLoop, summarize, type PhaseResult, type Summary } from './stats.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(BENCH_DIR, '..');
const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

function positiveInt(name: string, raw: string | undefined, dflt: number): number {
  if (raw === undefined || raw === '') return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < 0) throw new Error(`${name} must be a non-negative integer, got "${raw}"`);
  return v;
}

function options() {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: {
      n: { type: 'string' },
      c: { type: 'string' },
      warmup: { type: 'string' },
      rounds: { type: 'string' },
      'max-jobs': { type: 'string' },
      submits: { type: 'string' },
      rows: { type: 'string' },
      sessions: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  });
  const rows = new Set((values.rows ?? 'core,submit,get,sse,consent,kg').split(',').map((r) => r.trim()));
  for (const r of rows) if (!ROWS.includes(r)) throw new Error(`unknown row "${r}" (rows: ${ROWS.join(', ')})`);
  const sessions = values.sessions ?? 'on';
  if (sessions !== 'on' && sessions !== 'off') throw new Error(`--sessions must be on or off, got "${sessions}"`);
  const cpuProf = values['cpu-prof'] ? path.resolve(values['cpu-prof']) : undefined;
  const n = positiveInt('N', values.n ?? process.env.BENCH_N, 200);
  const c = positiveInt('C', values.c ?? process.env.BENCH_C, 20);
  const warmup = positiveInt('warm-up', values.warmup ?? process.env.BENCH_WARMUP, 10);
  const rounds = positiveInt('rounds', values.rounds ?? process.env.BENCH_ROUNDS, 2);
  const maxJobs = positiveInt('MAX_CONCURRENT_JOBS', values['max-jobs'] ?? process.env.BENCH_MAX_JOBS, c);
  if (n < 1 || c < 1 || maxJobs < 1 || rounds < 1) throw new Error('N, C, rounds and MAX_CONCURRENT_JOBS must be at least 1');
  if (rounds > n) throw new Error(`rounds (${rounds}) cannot exceed N (${n})`);
  const submits = positiveInt('submits', values.submits ?? process.env.BENCH_SUBMITS, Math.min(n, 100));
  if (submits < rounds) throw new Error(`submits (${submits}) cannot be fewer than rounds (${rounds})`);
  return { n, c, warmup, rounds, maxJobs, submits, rows, sessions, cpuProf };
}

const ROWS = ['core', 'submit', 'get', 'sse', 'consent', 'kg'];

const progress = (m: string) => process.stderr.write(`bench: ${m}\n`);

interface OrchProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  tail: string[];
  exited: Promise<number | null>;
}

/** Runs `node --import tsx src/main.ts <command>` directly (no npm/tsx wrapper), so child.pid is the node process. */
function spawnOrchestrator(command: 'api' | 'worker', env: Record<string, string>, name: string = command, cpuProf?: string): OrchProcess {
  const prof = cpuProf ? ['--cpu-prof', '--cpu-prof-dir', path.join(cpuProf, name.replace(/\W+/g, '-'))] : [];
  const child = spawn(process.execPath, [...prof, '--import', 'tsx', 'src/main.ts', command], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (child.pid === undefined) throw new Error(`could not start the ${command} process`);
  const tail: string[] = [];
  const keep = (chunk: Buffer) => {
    tail.push(...String(chunk).split('\n').filter(Boolean));
    if (tail.length > 40) tail.splice(0, tail.length - 40);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { name, child, pid: child.pid, tail, exited };
}

async function stopProcess(p: OrchProcess): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), 15_000);
  await p.exited;
  clearTimeout(timer);
}

function describeExit(p: OrchProcess): string {
  return `the ${p.name} process exited (code ${p.child.exitCode}, signal ${p.child.signalCode}); its last output:\n  ${p.tail.join('\n  ')}`;
}

async function waitReady(url: string, api: OrchProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (api.child.exitCode !== null) throw new Error(describeExit(api));
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) return;
      last = `HTTP ${res.status}: ${await res.text()}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`the API was not ready within ${timeoutMs} ms (last: ${last}); its output:\n  ${api.tail.join('\n  ')}`);
}

async function main(): Promise<number> {
  const benchStarted = performance.now();
  const opt = options();
  const tag = randomBytes(4).toString('hex');
  const stops: Array<[string, () => Promise<unknown>]> = [];
  let cleaning: Promise<void> | undefined;
  const cleanup = () =>
    (cleaning ??= (async () => {
      for (const [what, stop] of stops.reverse()) {
        await stop().catch((err: unknown) => progress(`cleanup: ${what} failed: ${(err as Error).message}`));
      }
    })());
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      progress(`${sig}: cleaning up`);
      void cleanup().finally(() => process.exit(1));
    });
  }

  let processes: OrchProcess[] = [];
  try {
    // --- infrastructure: Temporal dev server, database, MCP server, baseline bundle -----------------------------
    progress('starting the Temporal dev server, a fresh database and the MCP test server');
    stops.push(['Temporal dev server', stopSharedTemporal]);
    const [temporal, testDb, oracle, heavyOracle, baselineBundle, resultsDir] = await Promise.all([
      sharedTemporal(),
      createTestDb('bench').then((d: TestDb) => (stops.push(['database', () => d.drop()]), d)),
      startTestMcpServer({ name: 'bench' }).then((s: TestMcpServer) => (stops.push(['MCP server', () => s.stop()]), s)),
      // Tools named heavy_*, so the heavy server's tools never compete with the light one's in routing.
      startTestMcpServer({ name: 'heavy', toolPrefix: 'heavy_' }).then((s: TestMcpServer) => (stops.push(['heavy MCP server', () => s.stop()]), s)),
      bundleWorkflowCode({ workflowsPath: path.join(BENCH_DIR, 'baseline-workflow.ts'), logger: quietLogger }),
      mkdtemp(path.join(os.tmpdir(), 'orch-bench-results-')).then((d) => (stops.push(['results dir', () => rm(d, { recursive: true, force: true })]), d)),
    ]);

    // --- orchestrator API and worker as separate processes ------------------------------------------------------
    const port = await freePort();
    const prefix = `bench:${tag}:`;
    const env: Record<string, string> = {
      DATABASE_URL: testDb.url,
      REDIS_URL: REDIS_TEST_URL,
      REDIS_PREFIX: prefix,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TASK_QUEUE: `bench-tasks-${tag}`,
      JWT_SECRET: randomBytes(32).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      PORT: String(port),
      HOST: '127.0.0.1',
      RESULT_STORE: `file://${resultsDir}`,
      LOG_LEVEL: 'warn',
      MAX_CONCURRENT_JOBS: String(opt.maxJobs),
      WORKER_METRICS_PORT: '0',
      // The measured MCP server listens on 127.0.0.1.
      OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128',
      // On, so every check runs, but never refusing: the bench measures, it does not trip limits.
      RATE_LIMITS: 'on',
      RATE_LIMIT_REQUESTS: '10000000',
      RATE_LIMIT_SUBMISSIONS: '10000000',
      RATE_LIMIT_ANONYMOUS: '10000000',
      MAX_ACTIVE_TASKS_PER_PROJECT: '10000000',
      MAX_SSE_STREAMS_PER_USER: '10000000',
      MCP_SESSIONS: opt.sessions,
    };
    stops.push([
      'redis keys',
      async () => {
        const redis = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
        try {
          const keys: string[] = [];
          for await (const batch of redis.scanStream({ match: `${prefix}*`, count: 500 })) keys.push(...(batch as string[]));
          for (let i = 0; i < keys.length; i += 500) await redis.del(...keys.slice(i, i + 500));
        } finally {
          redis.disconnect();
        }
      },
    ]);
    // Workers in production load a prebuilt bundle (WORKFLOW_BUNDLE); so does the measured one.
    const bundlePath = path.join(resultsDir, 'workflow-bundle.js');
    await new Promise<void>((resolve, reject) => {
      const b = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'bundle', '--out', bundlePath], { cwd: ROOT, stdio: 'ignore' });
      b.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`orchestrator bundle exited ${code}`))));
    });
    env.WORKFLOW_BUNDLE = bundlePath;
    progress('starting the orchestrator worker and API processes');
    const worker = spawnOrchestrator('worker', env, 'worker', opt.cpuProf);
    const api = spawnOrchestrator('api', env, 'api', opt.cpuProf);
    const portOff = await freePort();
    const apiOff = spawnOrchestrator('api', { ...env, PORT: String(portOff), RATE_LIMITS: 'off' }, 'api (limits off)');
    processes = [worker, api];
    stops.push(['worker process', () => stopProcess(worker)]);
    stops.push(['API process', () => stopProcess(api)]);
    stops.push(['API process (limits off)', () => stopProcess(apiOff)]);
    for (const p of [...processes, apiOff]) {
      const argv0 = procArgv0(p.pid);
      if (argv0 === undefined || !/node[^/]*$/.test(argv0)) throw new Error(`pid ${p.pid} of the ${p.name} process runs ${argv0}, not node`);
    }
    const url = `http://127.0.0.1:${port}`;
    const urlOff = `http://127.0.0.1:${portOff}`;
    await waitReady(url, api, 120_000);
    await waitReady(urlOff, apiOff, 120_000);

    // --- baseline worker in this process, on its own task queue -------------------------------------------------
    const baselineQueue = `bench-baseline-${tag}`;
    const nativeConnection = await NativeConnection.connect({ address: temporal.address });
    const activities: BaselineActivities = { noop: async () => undefined };
    const baselineWorker = await Worker.create({
      connection: nativeConnection,
      namespace: temporal.namespace,
      taskQueue: baselineQueue,
      workflowBundle: baselineBundle,
      activities,
    });
    const baselineRun = baselineWorker.run();
    stops.push([
      'baseline worker',
      async () => {
        if (baselineWorker.getState() === 'RUNNING') baselineWorker.shutdown();
        await baselineRun;
        await nativeConnection.close();
      },
    ]);
    const connection = await Connection.connect({ address: temporal.address });
    stops.push(['Temporal client', () => connection.close()]);
    const client = new Client({ connection, namespace: temporal.namespace });

    // --- a user, a project and the MCP server registered through the API ----------------------------------------
    const user = await ensureUser(testDb.db, 'bench');
    const token = await createTokenService(loadConfig(env).jwt).sign({ sub: user.id, login: user.login });
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const post = async (p: string, body: unknown, want: number, base = url) => {
      const res = await fetch(`${base}${p}`, { method: 'POST', headers, body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== want) throw new Error(`POST ${p} answered ${res.status} (wanted ${want}): ${text}`);
      return JSON.parse(text) as { id: string };
    };
    const projectId = (await post('/v1/projects', { name: 'bench' }, 201)).id;
    await post('/v1/mcps', { name: 'bench', oracleUrl: oracle.url }, 201);
    await post('/v1/mcps', { name: 'heavy', oracleUrl: heavyOracle.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['heavy_slow'] }, 201);

    // --- the two jobs -------------------------------------------------------------------------------------------
    let slotWaits = 0;
    // Client-side marks of the measured tasks, laid beside their histories afterwards (bench/task-phases.ts).
    let orchMarks: TaskMarks[] | undefined;
    let baseMarks: TaskMarks[] | undefined;
    const orchestratorTask = (timeoutMs: number) => async (): Promise<number> => {
      const t0 = performance.now();
      const mark: TaskMarks = { workflowId: '', sentAt: Date.now() };
      const { id } = await post('/v1/tasks', { projectId, tool: 'echo', arguments: { text: 'x' } }, 202);
      mark.acceptedAt = Date.now();
      mark.workflowId = `task-${id}`;
      orchMarks?.push(mark);
      let done: number | undefined;
      let final: string | undefined;
      const r = await readEvents(`${url}/v1/tasks/${id}/events`, {
        token,
        timeoutMs,
        onEvent: (e) => {
          if (e.event !== 'status' || done !== undefined) return;
          if (e.data?.detail?.waitingFor !== undefined) slotWaits++;
          if (TERMINAL.has(e.data?.status)) {
            done = performance.now();
            mark.doneAt = Date.now();
            final = e.data.status as string;
          }
        },
      });
      if (done === undefined) throw new Error(`task ${id}: no terminal status on the event stream (HTTP ${r.status}, ${r.events.length} events)`);
      if (final !== 'succeeded') throw new Error(`task ${id} ended ${final}`);
      return done - t0;
    };
    let baselineSeq = 0;
    const baselineTask = async (): Promise<number> => {
      const t0 = performance.now();
      const mark: TaskMarks = { workflowId: `bench-baseline-${tag}-${baselineSeq++}`, sentAt: Date.now() };
      baseMarks?.push(mark);
      await client.workflow.execute<typeof baselineWorkflow>('baselineWorkflow', { taskQueue: baselineQueue, workflowId: mark.workflowId });
      mark.doneAt = Date.now();
      return performance.now() - t0;
    };
    const check = (what: string, r: PhaseResult) => {
      if (r.failures.length > 0) throw new Error(`${what}: ${r.failures.length} of ${r.failures.length + r.latenciesMs.length} tasks failed:\n  ${r.failures.slice(0, 5).join('\n  ')}`);
    };

    // --- warm-up (the first orchestrator task also waits for the worker to bundle its workflows) -----------------
    progress(`warming up with ${opt.warmup} + ${opt.warmup} tasks`);
    const firstOk = await orchestratorTask(180_000)();
    progress(`first orchestrator task done in ${fmt(firstOk, 0)} ms`);
    check('baseline warm-up', await runClosedLoop(opt.warmup, opt.c, baselineTask));
    check('orchestrator warm-up', await runClosedLoop(opt.warmup, opt.c, orchestratorTask(60_000)));
    for (const p of processes) if (p.child.exitCode !== null) throw new Error(describeExit(p));

    const startupPeakKb = new Map(processes.map((p) => [p.name, procStatusKb(p.pid, 'VmHWM')]));
    const extra: string[] = [];
    const peakReset = processes.every((p) => resetPeakRss(p.pid));

    // --- measured phases: alternating rounds, ABBA order -------------------------------------------------------
    slotWaits = 0;
    orchMarks = [];
    baseMarks = [];
    const orchCpu = new CpuTally();
    const baseCpu = new CpuTally();
    const base: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    const orch: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    const add = (into: PhaseResult, r: PhaseResult) => {
      into.latenciesMs.push(...r.latenciesMs);
      into.wallMs += r.wallMs;
      into.failures.push(...r.failures);
    };
    for (let round = 0; opt.rows.has('core') && round < opt.rounds; round++) {
      const size = Math.floor(opt.n / opt.rounds) + (round < opt.n % opt.rounds ? 1 : 0);
      const order = round % 2 === 0 ? (['baseline', 'orchestrator'] as const) : (['orchestrator', 'baseline'] as const);
      for (const which of order) {
        progress(`round ${round + 1}/${opt.rounds}: ${which}, ${size} tasks at C=${opt.c}`);
        const named = { 'orchestrator worker': worker.pid, 'orchestrator api': api.pid, 'bench (clients + bare worker)': process.pid };
        const before = cpuSnapshot(named);
        if (which === 'baseline') add(base, await runClosedLoop(size, opt.c, baselineTask));
        else add(orch, await runClosedLoop(size, opt.c, orchestratorTask(60_000)));
        (which === 'baseline' ? baseCpu : orchCpu).add(before, cpuSnapshot(named));
        check(which, which === 'baseline' ? base : orch);
      }
    }
    const measuredPeakKb = new Map(processes.map((p) => [p.name, procStatusKb(p.pid, 'VmHWM')]));
    const phaseLines = opt.rows.has('core')
      ? [
          ...(await taskPhases(client, `where the time goes, orchestrator, C=${opt.c}`, orchMarks)),
          ...(await taskPhases(client, `where the time goes, bare baseline, C=${opt.c}`, baseMarks)),
          '',
          ...orchCpu.lines('CPU during the orchestrator rounds', orch.latenciesMs.length),
          ...baseCpu.lines('CPU during the baseline rounds', base.latenciesMs.length),
        ]
      : [];
    orchMarks = undefined;
    baseMarks = undefined;
    const rssNowKb = new Map(processes.map((p) => [p.name, procStatusKb(p.pid, 'VmRSS')]));

    // --- submission latency with limits on vs off: same database, worker and project, alternating ABBA ---------
    const submitOnly = (base: string) => async (): Promise<number> => {
      const t0 = performance.now();
      await post('/v1/tasks', { projectId, tool: 'echo', arguments: { text: 'x' } }, 202, base);
      return performance.now() - t0;
    };
    const submitWarmup = Math.min(opt.warmup, 10);
    if (opt.rows.has('submit')) {
      progress(`submission latency: warming up both APIs with ${submitWarmup} submissions each`);
      check('submit warm-up (limits on)', await runClosedLoop(submitWarmup, opt.c, submitOnly(url)));
      check('submit warm-up (limits off)', await runClosedLoop(submitWarmup, opt.c, submitOnly(urlOff)));
    }
    const limitsOn: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    const limitsOff: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    for (let round = 0; opt.rows.has('submit') && round < opt.rounds; round++) {
      const size = Math.floor(opt.submits / opt.rounds) + (round < opt.submits % opt.rounds ? 1 : 0);
      const order = round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
      for (const which of order) {
        progress(`submit round ${round + 1}/${opt.rounds}: limits ${which}, ${size} submissions at C=${opt.c}`);
        add(which === 'on' ? limitsOn : limitsOff, await runClosedLoop(size, opt.c, submitOnly(which === 'on' ? url : urlOff)));
        check(`submit (limits ${which})`, which === 'on' ? limitsOn : limitsOff);
      }
    }
    if (apiOff.child.exitCode !== null) throw new Error(describeExit(apiOff));

    // --- further rows: GET throughput, SSE fan-out, parked tasks ------------------------------------------------
    const redis = new Redis(REDIS_TEST_URL, { maxRetriesPerRequest: 1 });
    stops.push(['bench redis client', async () => redis.disconnect()]);
    const rowCtx: RowContext = { url, token, projectId, db: testDb.db, redis, redisPrefix: prefix, apiPid: api.pid, workerPid: worker.pid, rounds: opt.rounds, post, progress };
    if (opt.rows.has('get')) extra.push(...(await getTaskRow(rowCtx)));
    let parkedTaskId: string | undefined;
    if (opt.rows.has('consent')) {
      const r = await consentRow(rowCtx);
      extra.push(...r.lines);
      parkedTaskId = r.parkedTaskId;
    }
    if (opt.rows.has('sse')) {
      if (!parkedTaskId) {
        parkedTaskId = (await post('/v1/tasks', { projectId, tool: 'heavy_slow', arguments: { ms: 1 } }, 202)).id;
        for (let i = 0; i < 200; i++) {
          const row = await testDb.db.selectFrom('tasks').select('status').where('id', '=', parkedTaskId).executeTakeFirst();
          if (row?.status === 'awaiting_consent') break;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      extra.push(...(await sseRow(rowCtx, parkedTaskId)));
    }
    if (opt.rows.has('kg')) extra.push(...(await kgRow(rowCtx, { entities: Math.max(1, positiveInt('BENCH_KG_ENTITIES', process.env.BENCH_KG_ENTITIES, 5000)) })));
    for (const p of processes) if (p.child.exitCode !== null) throw new Error(describeExit(p));

    // --- report -------------------------------------------------------------------------------------------------
    const b = summarize(base);
    const o = summarize(orch);
    const sOn = summarize(limitsOn);
    const sOff = summarize(limitsOff);
    const mib = (kb: number | undefined) => (kb === undefined ? 'n/a' : `${fmt(kb / 1024, 0)} MiB`);
    const row = (label: string, s: Summary) =>
      `${label.padEnd(28)}${fmt(s.tasksPerSec).padStart(10)}${fmt(s.p50).padStart(10)}${fmt(s.p95).padStart(10)}${fmt(s.p99).padStart(10)}`;
    const ratio = (x: number, y: number) => fmt(x / y, 2);
    const coreLines = [
      '',
      `orchestrator bench — N=${opt.n} tasks, concurrency C=${opt.c}, warm-up ${opt.warmup} tasks each, one Temporal dev server (in-memory)`,
      `  orchestrator: POST /v1/tasks (echo on a local MCP server) → taskWorkflow → result stored; completion read from the SSE stream`,
      `                GET /v1/tasks/:id/events (latency = before POST → terminal status event received). MAX_CONCURRENT_JOBS=${opt.maxJobs}` +
        `${opt.maxJobs >= opt.c ? ' (≥ C, so the cap does not throttle)' : ' (< C: the cap throttles!)'}; tasks that waited for a slot: ${slotWaits}`,
      `  baseline:     client.workflow.execute of a workflow with one no-op activity, worker in the bench process, own task queue`,
      `  ${opt.rounds} round(s), alternating baseline/orchestrator in ABBA order; tasks/s = N / summed round wall time (first submit → last completion)`,
      '',
      `${''.padEnd(28)}${'tasks/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}${'p99 ms'.padStart(10)}`,
      row('orchestrator (HTTP+SSE)', o),
      row('bare Temporal baseline', b),
      `${'ratio orchestrator/baseline'.padEnd(28)}${ratio(o.tasksPerSec, b.tasksPerSec).padStart(10)}${ratio(o.p50, b.p50).padStart(10)}${ratio(o.p95, b.p95).padStart(10)}${ratio(o.p99, b.p99).padStart(10)}`,
      '',
      `peak RSS (VmHWM)            ${'measured'.padStart(12)}${'since start'.padStart(14)}${'at end'.padStart(10)}`,
      ...processes.map((p) => {
        const measured = peakReset ? measuredPeakKb.get(p.name) : undefined;
        const sinceStart = Math.max(startupPeakKb.get(p.name) ?? 0, measuredPeakKb.get(p.name) ?? 0) || undefined;
        return `  ${`${p.name} (pid ${p.pid})`.padEnd(26)}${mib(measured).padStart(12)}${mib(sinceStart).padStart(14)}${mib(rssNowKb.get(p.name)).padStart(10)}`;
      }),
      `  "measured" = peak during both measured phases (counter reset after warm-up${peakReset ? '' : ' FAILED, so n/a'}); "since start" includes startup (the worker loads a prebuilt workflow bundle).`,
      '',
      ...phaseLines,
      '',
    ];
    const submitLines = [
      `submit p50 with limits on vs off — ${opt.submits} POST /v1/tasks (202) per side at C=${opt.c}, ${opt.rounds} alternating round(s) in ABBA order;`,
      `  two API processes on one database and worker, one with RATE_LIMITS=off (target: on/off ≤ 1.05)`,
      `${''.padEnd(28)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}`,
      `${'limits on'.padEnd(28)}${fmt(sOn.p50).padStart(10)}${fmt(sOn.p95).padStart(10)}`,
      `${'limits off'.padEnd(28)}${fmt(sOff.p50).padStart(10)}${fmt(sOff.p95).padStart(10)}`,
      `${'ratio on/off'.padEnd(28)}${ratio(sOn.p50, sOff.p50).padStart(10)}${ratio(sOn.p95, sOff.p95).padStart(10)}`,
      '',
    ];
    const lines = [
      ...(opt.rows.has('core') ? coreLines : ['']),
      `MCP session reuse (MCP_SESSIONS): ${opt.sessions}`,
      '',
      ...(opt.rows.has('submit') ? submitLines : []),
      ...extra,
    ];
    process.stdout.write(lines.join('\n'));
    await cleanup();
    progress(`done in ${fmt((performance.now() - benchStarted) / 1000)} s (setup and teardown included)`);
    return 0;
  } catch (err) {
    process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
    for (const p of processes) if (p.child.exitCode !== null) process.stderr.write(`${describeExit(p)}\n`);
    await cleanup();
    return 1;
  }
}

const noop = () => undefined;
const quietLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    // Only option errors get here (everything after them is caught in main): the message says enough.
    process.stderr.write(`bench failed: ${(err as Error).message}\n`);
    process.exit(1);
  },
);

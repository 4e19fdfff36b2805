// `npm run bench:embedded`: the light-task bench of bench/run.ts, but against `npm start` with nothing configured —
// the one `dev` process on an embedded Postgres (PGlite) and in-process Redis, a fresh data folder — beside a bare
// baseline (one workflow, one no-op activity) on the same Temporal dev server, the one `dev` started. Alternating
// ABBA rounds, ratios reported, nothing asserted. Compare its ratios with `npm run bench -- --rows core` (real
// Postgres and Redis, separate API and worker processes) run the same way.
//
//   npx tsx bench/embedded.ts --n 40 --c 1 --rounds 2     (or BENCH_N, BENCH_C, BENCH_WARMUP, BENCH_ROUNDS)

import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode, NativeConnection, Worker } from '@temporalio/worker';
import { runCliProcess } from '../test/support/cli-process.ts';
import { nothingConfiguredEnv, startDevProcess } from '../test/support/dev-process.ts';
import { startTestMcpServer } from '../test/support/mcp-test-server.ts';
import { readEvents } from '../test/support/sse-client.ts';
import type { BaselineActivities, baselineWorkflow } from './baseline-workflow.ts';
import { fmt, procStatusKb, runClosedLoop, summarize, type PhaseResult } from './stats.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const progress = (m: string) => process.stderr.write(`bench:embedded: ${m}\n`);
const quietLogger = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, log: () => undefined };

function count(name: string, raw: string | undefined, dflt: number): number {
  const v = raw === undefined || raw === '' ? dflt : Number(raw);
  if (!Number.isInteger(v) || v < 1) throw new Error(`${name} must be a positive integer, got "${raw}"`);
  return v;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ args: process.argv.slice(2), options: { n: { type: 'string' }, c: { type: 'string' }, warmup: { type: 'string' }, rounds: { type: 'string' } } });
  const n = count('N', values.n ?? process.env.BENCH_N, 40);
  const c = count('C', values.c ?? process.env.BENCH_C, 1);
  const warmup = count('warm-up', values.warmup ?? process.env.BENCH_WARMUP, 5);
  const rounds = count('rounds', values.rounds ?? process.env.BENCH_ROUNDS, 2);
  const tag = randomBytes(4).toString('hex');
  const stops: Array<() => Promise<unknown>> = [];
  try {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'orch-bench-embedded-'));
    stops.push(() => rm(dataDir, { recursive: true, force: true }));
    const oracle = await startTestMcpServer({ name: 'bench' });
    stops.push(() => oracle.stop());
    const baselineBundle = await bundleWorkflowCode({ workflowsPath: path.join(ROOT, 'bench', 'baseline-workflow.ts'), logger: quietLogger });

    // --- `npm start` with nothing configured: no DATABASE_URL, no REDIS_URL, a fresh data folder ------------------
    const { env, port } = await nothingConfiguredEnv(
      dataDir,
      {
        MAX_CONCURRENT_JOBS: String(c),
        // On, so every check runs, but never refusing: the bench measures, it does not trip limits.
        RATE_LIMIT_REQUESTS: '10000000',
        RATE_LIMIT_SUBMISSIONS: '10000000',
        MAX_ACTIVE_TASKS_PER_PROJECT: '10000000',
        MAX_SSE_STREAMS_PER_USER: '10000000',
      },
      progress,
    );
    progress(`starting npm start's process (src/main.ts dev) on a fresh data folder ${dataDir}`);
    const started = performance.now();
    const { child, exited } = await startDevProcess(env, 300_000);
    stops.push(async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      await exited;
      clearTimeout(timer);
    });
    const firstStartMs = performance.now() - started;
    progress(`up in ${fmt(firstStartMs / 1000)} s`);

    const url = `http://127.0.0.1:${port}`;
    const minted = await runCliProcess(['token', '--login', 'bench'], { env, timeoutMs: 120_000 });
    if (minted.code !== 0) throw new Error(`orchestrator token failed: ${minted.stderr}`);
    const token = minted.stdout.trim();
    const headers = { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' };
    const post = async (p: string, body: unknown, want: number) => {
      const res = await fetch(`${url}${p}`, { method: 'POST', headers, body: JSON.stringify(body) });
      const text = await res.text();
      if (res.status !== want) throw new Error(`POST ${p} answered ${res.status} (wanted ${want}): ${text}`);
      return JSON.parse(text) as { id: string };
    };
    const projectId = (await post('/v1/projects', { name: 'bench' }, 201)).id;
    await post('/v1/mcps', { name: 'bench', oracleUrl: oracle.url }, 201);

    // --- the bare baseline: a worker in this process, on dev's Temporal dev server, its own task queue ------------
    const baselineQueue = `bench-baseline-${tag}`;
    const nativeConnection = await NativeConnection.connect({ address: env.TEMPORAL_ADDRESS! });
    const activities: BaselineActivities = { noop: async () => undefined };
    const baselineWorker = await Worker.create({ connection: nativeConnection, namespace: 'default', taskQueue: baselineQueue, workflowBundle: baselineBundle, activities });
    const baselineRun = baselineWorker.run();
    stops.push(async () => {
      if (baselineWorker.getState() === 'RUNNING') baselineWorker.shutdown();
      await baselineRun;
      await nativeConnection.close();
    });
    const connection = await Connection.connect({ address: env.TEMPORAL_ADDRESS! });
    stops.push(() => connection.close());
    const client = new Client({ connection, namespace: 'default' });

    const orchestratorTask = async (): Promise<number> => {
      const t0 = performance.now();
      const { id } = await post('/v1/tasks', { projectId, tool: 'echo', arguments: { text: 'x' } }, 202);
      let done: number | undefined;
      let final: string | undefined;
      await readEvents(`${url}/v1/tasks/${id}/events`, {
        token,
        timeoutMs: 60_000,
        onEvent: (e) => {
          if (e.event === 'status' && done === undefined && ['succeeded', 'failed', 'cancelled'].includes(e.data?.status)) {
            final = e.data.status as string;
            done = performance.now();
          }
        },
      });
      if (done === undefined) throw new Error(`task ${id}: no terminal status on the event stream`);
      if (final !== 'succeeded') throw new Error(`task ${id} ended ${final}`);
      return done - t0;
    };
    let seq = 0;
    const baselineTask = async (): Promise<number> => {
      const t0 = performance.now();
      await client.workflow.execute<typeof baselineWorkflow>('baselineWorkflow', { taskQueue: baselineQueue, workflowId: `bench-baseline-${tag}-${seq++}` });
      return performance.now() - t0;
    };
    const check = (what: string, r: PhaseResult) => {
      if (r.failures.length > 0) throw new Error(`${what}: ${r.failures.length} failed:\n  ${r.failures.slice(0, 5).join('\n  ')}`);
    };

    progress(`warming up with ${warmup} + ${warmup} tasks`);
    check('baseline warm-up', await runClosedLoop(warmup, c, baselineTask));
    check('orchestrator warm-up', await runClosedLoop(warmup, c, orchestratorTask));
    const base: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    const orch: PhaseResult = { latenciesMs: [], wallMs: 0, failures: [] };
    for (let round = 0; round < rounds; round++) {
      const size = Math.floor(n / rounds) + (round < n % rounds ? 1 : 0);
      const order = round % 2 === 0 ? (['baseline', 'orchestrator'] as const) : (['orchestrator', 'baseline'] as const);
      for (const which of order) {
        progress(`round ${round + 1}/${rounds}: ${which}, ${size} tasks at C=${c}`);
        const r = await runClosedLoop(size, c, which === 'baseline' ? baselineTask : orchestratorTask);
        check(which, r);
        const into = which === 'baseline' ? base : orch;
        into.latenciesMs.push(...r.latenciesMs);
        into.wallMs += r.wallMs;
      }
    }
    const rssKb = procStatusKb(child.pid!, 'VmHWM');
    const o = summarize(orch);
    const b = summarize(base);
    const row = (label: string, s: ReturnType<typeof summarize>) => `${label.padEnd(34)}${fmt(s.tasksPerSec).padStart(10)}${fmt(s.p50).padStart(10)}${fmt(s.p95).padStart(10)}`;
    process.stdout.write(
      [
        '',
        `embedded-mode bench — npm start with nothing configured (PGlite + in-process Redis, one process), N=${n}, C=${c}, ${rounds} ABBA round(s)`,
        `  first start on a fresh data folder: ${fmt(firstStartMs / 1000)} s; dev process peak RSS ${rssKb === undefined ? 'n/a' : `${fmt(rssKb / 1024, 0)} MiB`}`,
        '',
        `${''.padEnd(34)}${'tasks/s'.padStart(10)}${'p50 ms'.padStart(10)}${'p95 ms'.padStart(10)}`,
        row('orchestrator, embedded (HTTP+SSE)', o),
        row('bare Temporal baseline', b),
        `${'ratio orchestrator/baseline'.padEnd(34)}${fmt(o.tasksPerSec / b.tasksPerSec, 2).padStart(10)}${fmt(o.p50 / b.p50, 2).padStart(10)}${fmt(o.p95 / b.p95, 2).padStart(10)}`,
        '',
      ].join('\n'),
    );
  } finally {
    for (const stop of stops.reverse()) await stop().catch((err: unknown) => progress(`cleanup failed: ${(err as Error).message}`));
  }
}

await main();

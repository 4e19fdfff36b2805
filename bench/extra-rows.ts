// The bench's further rows, each run against the same API and worker processes as the main phases:
//   get      GET /v1/tasks/:id requests/s (autocannon) against a bare Koa process answering the same JSON
//   sse      1,000 SSE subscribers of one task on one API process: API RSS and the p99 delivery lag of an event
//   consent  1,000 tasks parked awaiting consent: worker RSS while they wait

import { spawn } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import type { Redis } from 'ioredis';
import { createTaskEvents } from '../src/core/task-events.ts';
import type { Db } from '../src/db/create-db.ts';
import { fmt, percentile, procStatusKb } from './stats.ts';

const BENCH_DIR = path.dirname(fileURLToPath(import.meta.url));

export interface RowContext {
  url: string;
  token: string;
  projectId: string;
  db: Db;
  redis: Redis;
  redisPrefix: string;
  apiPid: number;
  workerPid: number;
  rounds: number;
  post: (p: string, body: unknown, want: number) => Promise<{ id: string }>;
  progress: (m: string) => void;
}

const mib = (kb: number | undefined) => (kb === undefined ? 'n/a' : `${fmt(kb / 1024, 0)} MiB`);

async function cannon(url: string, headers: Record<string, string>, seconds: number): Promise<number> {
  const result = await autocannon({ url, headers, connections: 20, duration: seconds });
  if (result.non2xx > 0 || result.errors > 0) throw new Error(`autocannon ${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result.requests.average;
}

/** GET /v1/tasks/:id against a bare Koa process answering the same JSON, in alternating rounds. */
export async function getTaskRow(ctx: RowContext): Promise<string[]> {
  const { id } = await ctx.post('/v1/tasks', { projectId: ctx.projectId, tool: 'echo', arguments: { text: 'x' } }, 202);
  await new Promise((r) => setTimeout(r, 2000));
  const headers = { Authorization: `Bearer ${ctx.token}` };
  const body = await (await fetch(`${ctx.url}/v1/tasks/${id}`, { headers })).text();
  const bare = spawn(process.execPath, ['--import', 'tsx', path.join(BENCH_DIR, 'bare-koa.ts')], { env: { ...process.env, BARE_BODY: body }, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const bareUrl = await new Promise<string>((resolve, reject) => {
      bare.stdout!.once('data', (d) => resolve(String(d).trim()));
      bare.once('exit', (code) => reject(new Error(`bare Koa exited ${code}`)));
    });
    const seconds = 5;
    const orch: number[] = [];
    const base: number[] = [];
    await cannon(`${bareUrl}/v1/tasks/${id}`, {}, 1);
    await cannon(`${ctx.url}/v1/tasks/${id}`, headers, 1);
    for (let round = 0; round < ctx.rounds; round++) {
      const order = round % 2 === 0 ? (['bare', 'orch'] as const) : (['orch', 'bare'] as const);
      for (const which of order) {
        ctx.progress(`GET /v1/tasks/:id round ${round + 1}/${ctx.rounds}: ${which}, ${seconds} s`);
        if (which === 'bare') base.push(await cannon(`${bareUrl}/v1/tasks/${id}`, {}, seconds));
        else orch.push(await cannon(`${ctx.url}/v1/tasks/${id}`, headers, seconds));
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return [
      `GET /v1/tasks/:id — autocannon, 20 connections, ${seconds} s per side, ${ctx.rounds} alternating round(s); bare = a Koa process answering the same ${body.length}-byte JSON`,
      `${''.padEnd(28)}${'req/s'.padStart(10)}`,
      `${'orchestrator'.padEnd(28)}${fmt(mean(orch), 0).padStart(10)}`,
      `${'bare Koa'.padEnd(28)}${fmt(mean(base), 0).padStart(10)}`,
      `${'ratio orchestrator/bare'.padEnd(28)}${fmt(mean(orch) / mean(base), 2).padStart(10)}`,
      '',
    ];
  } finally {
    bare.kill('SIGTERM');
  }
}

interface Subscriber {
  req: http.ClientRequest;
  arrived: Map<string, number>;
}

/** One SSE stream read with node:http (lighter than fetch for 1,000 of them); records when each marked event arrives. */
function subscribe(url: string, token: string): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const arrived = new Map<string, number>();
    const req = http.get(url, { headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' }, agent: false }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`SSE subscribe answered ${res.statusCode}`));
      res.setEncoding('utf8');
      let buf = '';
      res.on('data', (chunk: string) => {
        buf += chunk;
        for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const m = /"benchMark":"([^"]+)"/.exec(block);
          if (m) arrived.set(m[1]!, performance.now());
        }
      });
      resolve({ req, arrived });
    });
    req.on('error', reject);
  });
}

/** 1,000 subscribers of one task parked awaiting consent; events appended the way activities append them. */
export async function sseRow(ctx: RowContext, taskId: string, subscribers = 1000): Promise<string[]> {
  const events = createTaskEvents({ db: ctx.db, publisher: ctx.redis, channelPrefix: ctx.redisPrefix });
  const before = procStatusKb(ctx.apiPid, 'VmRSS');
  const subs: Subscriber[] = [];
  ctx.progress(`SSE: opening ${subscribers} subscriptions to one task`);
  for (let i = 0; i < subscribers; i += 50) {
    subs.push(...(await Promise.all(Array.from({ length: Math.min(50, subscribers - i) }, () => subscribe(`${ctx.url}/v1/tasks/${taskId}/events`, ctx.token)))));
  }
  await new Promise((r) => setTimeout(r, 1000));
  const lags: number[] = [];
  try {
    for (let k = 0; k < 10; k++) {
      const mark = `m${k}`;
      const sent = performance.now();
      await events.append(taskId, 'progress', { message: 'bench', benchMark: mark });
      const deadline = Date.now() + 10_000;
      while (subs.some((s) => !s.arrived.has(mark)) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      const missing = subs.filter((s) => !s.arrived.has(mark)).length;
      if (missing > 0) throw new Error(`SSE: ${missing} of ${subscribers} subscribers did not get event ${mark} within 10 s`);
      for (const s of subs) lags.push(s.arrived.get(mark)! - sent);
      await new Promise((r) => setTimeout(r, 200));
    }
    const during = procStatusKb(ctx.apiPid, 'VmRSS');
    lags.sort((a, b) => a - b);
    return [
      `SSE fan-out — ${subscribers} subscribers of one task on one API process, 10 progress events appended (Postgres insert + Redis publish), lag = append start → event parsed by the subscriber (subscribers run in the bench process)`,
      `  p50 ${fmt(percentile(lags, 50))} ms, p99 ${fmt(percentile(lags, 99))} ms, max ${fmt(lags.at(-1)!)} ms; API RSS ${mib(before)} before → ${mib(during)} with ${subscribers} streams open`,
      '',
    ];
  } finally {
    for (const s of subs) s.req.destroy();
  }
}

/** Heavy tasks with no Space bound and fallback needing consent: each workflow waits on a condition, holding no executor. */
export async function consentRow(ctx: RowContext, count = 1000): Promise<{ lines: string[]; parkedTaskId: string }> {
  const before = procStatusKb(ctx.workerPid, 'VmRSS');
  ctx.progress(`consent: submitting ${count} heavy tasks that park awaiting consent`);
  const ids: string[] = [];
  for (let i = 0; i < count; i += 20) {
    ids.push(...(await Promise.all(Array.from({ length: Math.min(20, count - i) }, async () => (await ctx.post('/v1/tasks', { projectId: ctx.projectId, tool: 'heavy_slow', arguments: { ms: 1 } }, 202)).id))));
  }
  const parked = async () =>
    Number((await ctx.db.selectFrom('tasks').select((eb) => eb.fn.countAll<string>().as('n')).where('status', '=', 'awaiting_consent').executeTakeFirstOrThrow()).n);
  const deadline = Date.now() + 180_000;
  while ((await parked()) < count) {
    if (Date.now() > deadline) throw new Error(`consent: only ${await parked()} of ${count} tasks parked within 180 s`);
    await new Promise((r) => setTimeout(r, 500));
  }
  const samples = [procStatusKb(ctx.workerPid, 'VmRSS')];
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 5000));
    samples.push(procStatusKb(ctx.workerPid, 'VmRSS'));
  }
  const peak = procStatusKb(ctx.workerPid, 'VmHWM');
  return {
    parkedTaskId: ids[0]!,
    lines: [
      `${count} tasks parked awaiting consent (heavy tool, fallback to the oracle needs consent, no Space bound): worker RSS ${mib(before)} before;` +
        ` after all parked, every 5 s: ${samples.map(mib).join(' → ')} (peak since start ${mib(peak)}; target ≤ 300 MiB and flat)`,
      '',
    ],
  };
}

// Where one light task's work goes: Temporal history (workflow tasks, activities, events), Postgres statements, Redis
// commands and MCP HTTP requests per task, with MCP session reuse on and off. API and worker run in this process (the
// test stack), so the counters below see both; pg and ioredis are wrapped here, for this script only.
//
//   npx tsx bench/breakdown.ts [--tasks 10] [--sessions on|off]   (one setting only: the quick run)

import { parseArgs } from 'node:util';
import proto from '@temporalio/proto';
import { Redis } from 'ioredis';
import pg from 'pg';
import { callTool } from '../src/integrations/mcp/call-tool.ts';
import { createMcpSessionPool } from '../src/integrations/mcp/session-pool.ts';
import { startTestMcpServer } from '../test/support/mcp-test-server.ts';
import { stopSharedTemporal } from '../test/support/shared-temporal.ts';
import { readEvents } from '../test/support/sse-client.ts';
import { startStack } from '../test/support/stack.ts';

const counts = { pg: new Map<string, number>(), redis: new Map<string, number>() };
const bump = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

const pgQuery = pg.Client.prototype.query;
pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
  const first = args[0];
  const text = typeof first === 'string' ? first : (first as { text?: string } | undefined)?.text ?? '';
  bump(counts.pg, sqlShape(text));
  return (pgQuery as (...a: unknown[]) => unknown).apply(this, args);
} as typeof pg.Client.prototype.query;

const redisSend = Redis.prototype.sendCommand;
Redis.prototype.sendCommand = function (this: Redis, command: { name: string }, stream?: unknown) {
  bump(counts.redis, command.name);
  return (redisSend as (...a: unknown[]) => unknown).call(this, command, stream);
} as typeof Redis.prototype.sendCommand;

/** "insert into task_events", "select from tasks", "begin": enough to see which table is touched how often. */
function sqlShape(sql: string): string {
  const s = sql.trim().toLowerCase().replace(/\s+/g, ' ');
  const verb = s.split(' ')[0] ?? '';
  const table = /(?:from|into|update) "?(\w+)"?/.exec(s)?.[1];
  return table ? `${verb} ${table}` : verb;
}

const total = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
const perTask = (m: Map<string, number>, n: number) =>
  [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${(v / n).toFixed(1)}`).join(', ');

async function measure(sessions: 'on' | 'off', n: number): Promise<string[]> {
  const oracle = await startTestMcpServer({ name: 'oracle' });
  const stack = await startStack({ env: { LOG_LEVEL: 'warn', MCP_SESSIONS: sessions, DISPATCH_RETRY_INITIAL: '1s', DISPATCH_RETRY_MAX: '30s' } });
  try {
    const token = await stack.token('bench');
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'bench' } })).body.id;
    await stack.api('POST', '/v1/mcps', { token, body: { name: 'bench', oracleUrl: oracle.url } });
    // Wall-clock marks of the last task, to lay beside its history's event times (same machine, same clock).
    let marks: { posted: number; accepted: number; done: number } = { posted: 0, accepted: 0, done: 0 };
    const run = async () => {
      const posted = Date.now();
      const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'x' } } });
      const accepted = Date.now();
      await readEvents(`${stack.url}/v1/tasks/${submit.body.id}/events`, { token, timeoutMs: 30_000 });
      marks = { posted, accepted, done: Date.now() };
      return submit.body.id as string;
    };
    for (let i = 0; i < 3; i++) await run();
    oracle.resetStats();
    counts.pg.clear();
    counts.redis.clear();
    let last = '';
    for (let i = 0; i < n; i++) last = await run();
    const pgCounts = new Map(counts.pg);
    const redisCounts = new Map(counts.redis);

    const handle = stack.world.client.workflow.getHandle(`task-${last}`);
    // The terminal status event is written before the workflow's last workflow task: wait for the whole history.
    await handle.result();
    const history = await handle.fetchHistory();
    const events = history.events ?? [];
    const byType = new Map<string, number>();
    for (const e of events) bump(byType, String(proto.temporal.api.enums.v1.EventType[e.eventType ?? 0]).replace(/^EVENT_TYPE_/, ''));
    const activities = events
      .filter((e) => e.activityTaskScheduledEventAttributes)
      .map((e) => e.activityTaskScheduledEventAttributes!.activityType?.name);
    const markers = events.filter((e) => e.markerRecordedEventAttributes).length;
    const ms = (e: (typeof events)[number]) => Number(e.eventTime?.seconds ?? 0) * 1000 + Math.round((e.eventTime?.nanos ?? 0) / 1e6);
    const timeline = [
      `POST sent +0`,
      ...events.map((e) => {
        const type = String(proto.temporal.api.enums.v1.EventType[e.eventType ?? 0]).replace(/^EVENT_TYPE_/, '').toLowerCase();
        const what = e.activityTaskScheduledEventAttributes?.activityType?.name ?? markerName(e.markerRecordedEventAttributes);
        return `${type}${what ? ` (${what})` : ''} +${ms(e) - marks.posted}`;
      }),
      `202 received +${marks.accepted - marks.posted}`,
      `terminal SSE event received +${marks.done - marks.posted}`,
    ];
    return [
      `### MCP sessions ${sessions} — per task, mean of ${n} sequential light tasks (echo on the oracle)`,
      '',
      `- Temporal history: ${events.length} events; ${byType.get('WORKFLOW_TASK_COMPLETED') ?? 0} workflow tasks; ` +
        `${activities.length} regular activities (${activities.join(', ') || 'none'}); ${markers} local activities (markers)`,
      `- Temporal event types: ${[...byType.entries()].map(([k, v]) => `${k.toLowerCase()} ${v}`).join(', ')}`,
      `- Postgres statements: ${(total(pgCounts) / n).toFixed(1)} (${perTask(pgCounts, n)})`,
      `- Redis commands: ${(total(redisCounts) / n).toFixed(1)} (${perTask(redisCounts, n)})`,
      `- MCP HTTP requests: ${(oracle.requestCount() / n).toFixed(1)}; initialize handshakes: ${(oracle.initializeCount() / n).toFixed(2)}; tools/call: ${(oracle.callCount() / n).toFixed(1)}`,
      `- the last task's timeline, ms after its POST was sent (history event times and wall clock; one task, so noisy):`,
      `  ${timeline.join(', ')}`,
      '',
    ];
  } finally {
    await stack.stop();
    await oracle.stop();
  }
}

/** A local activity's name, from its marker's recorded data. */
function markerName(attrs: { details?: Record<string, { payloads?: Array<{ data?: Uint8Array | null }> | null }> | null } | null | undefined): string | undefined {
  const data = attrs?.details?.data?.payloads?.[0]?.data;
  if (!data) return undefined;
  try {
    return (JSON.parse(Buffer.from(data).toString('utf8')) as { activity_type?: string }).activity_type;
  } catch {
    return undefined;
  }
}

/** The MCP client alone: sequential echo calls on loopback, a session per call vs a pooled one. */
async function callLatency(calls: number): Promise<string[]> {
  const server = await startTestMcpServer({ name: 'latency' });
  const sessions = createMcpSessionPool({ maxPerKey: 4, maxTotal: 16, maxCallsPerSession: 64, idleMs: 60_000, connectTimeoutMs: 5000 });
  const ep = { url: server.url, transport: 'streamable-http' as const };
  const time = async (pool?: typeof sessions) => {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) await callTool(ep, 'echo', { text: 'x' }, { timeoutMs: 5000, ...(pool ? { sessions: pool } : {}) });
    return (performance.now() - t0) / calls;
  };
  try {
    await time();
    await time(sessions);
    const rounds: Array<[number, number]> = [];
    for (let r = 0; r < 3; r++) rounds.push([await time(), await time(sessions)]);
    const off = rounds.reduce((a, [x]) => a + x, 0) / rounds.length;
    const on = rounds.reduce((a, [, y]) => a + y, 0) / rounds.length;
    return [`### MCP client alone — ${calls} sequential echo calls on loopback, 3 alternating rounds`, '', `- one session per call: ${off.toFixed(2)} ms/call; pooled session: ${on.toFixed(2)} ms/call (ratio ${(on / off).toFixed(2)})`, ''];
  } finally {
    await sessions.close();
    await server.stop();
  }
}

async function main() {
  const { values } = parseArgs({ options: { tasks: { type: 'string' }, sessions: { type: 'string' } } });
  const n = Number(values.tasks ?? 10);
  // `--sessions on` measures only the production setting (and skips the MCP client comparison): the quick run.
  const only = values.sessions;
  if (only !== undefined && only !== 'on' && only !== 'off') throw new Error(`--sessions must be on or off, got "${only}"`);
  const lines = [
    '',
    ...(only ? [] : await callLatency(200)),
    ...(only !== 'on' ? await measure('off', n) : []),
    ...(only !== 'off' ? await measure('on', n) : []),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await stopSharedTemporal();
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`breakdown failed: ${(err as Error).stack}\n`);
    process.exit(1);
  },
);

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { WorkflowNotFoundError } from '@temporalio/client';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { until } from '../support/until.ts';
import { startStallProxy } from '../support/stall-proxy.ts';

// The API runs as a real `orchestrator api` process, reaching Temporal through a proxy that can be made to hang, so
// it can be killed the hard way after it stored a task and before its workflow start reached Temporal.

interface ApiProcess {
  child: ChildProcess;
  url: string;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('an API killed between storing a task and starting its workflow', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;
  let proxy: Awaited<ReturnType<typeof startStallProxy>>;
  const apis: ApiProcess[] = [];

  /** The stack's configuration as the environment of an API process. */
  function apiEnv(temporalAddress: string, port: number, reconcileGrace: string): NodeJS.ProcessEnv {
    const c = stack.config;
    return {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: c.databaseUrl,
      REDIS_URL: c.redisUrl,
      REDIS_PREFIX: c.redisPrefix,
      TEMPORAL_ADDRESS: temporalAddress,
      TEMPORAL_NAMESPACE: c.temporal.namespace,
      TASK_QUEUE: c.temporal.taskQueue,
      JWT_SECRET: c.jwt.secret!,
      ENCRYPTION_KEY: c.encryptionKey,
      RESULT_STORE: c.results.store,
      HEARTBEAT_TIMEOUT: `${c.task.heartbeatTimeoutMs}ms`,
      DISPATCH_RETRY_INITIAL: `${c.task.retryInitialMs}ms`,
      DISPATCH_RETRY_MAX: `${c.task.retryMaxMs}ms`,
      PROBE_TIMEOUT: `${c.task.probeTimeoutMs}ms`,
      RECONCILE_INTERVAL: '200ms',
      RECONCILE_GRACE: reconcileGrace,
      OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128',
      RATE_LIMITS: 'off',
      LOG_LEVEL: 'info',
    };
  }

  async function startApiProcess(temporalAddress: string, reconcileGrace: string): Promise<ApiProcess> {
    const port = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'api'], {
      cwd: PROJECT_ROOT,
      env: apiEnv(temporalAddress, port, reconcileGrace),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const collect = (chunk: Buffer) => output.push(...String(chunk).split('\n').filter(Boolean));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const api = { child, url: `http://127.0.0.1:${port}`, output, exited };
    apis.push(api);
    let gone = false;
    void exited.then(() => (gone = true));
    await until('the API process to report "API listening"', () => {
      if (gone) throw new Error(`API process exited during start:\n${output.join('\n')}`);
      return output.some((l) => l.includes('API listening'));
    }, 60_000, 50);
    return api;
  }

  const submitTo = (api: ApiProcess, text: string) =>
    fetch(`${api.url}/v1/tasks`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ projectId, tool: 'echo', arguments: { text } }),
    });
  const taskWithText = (text: string) =>
    stack.world.db.selectFrom('tasks').selectAll().where(({ eb, ref }) => eb(ref('arguments', '->>').key('text'), '=', text)).executeTakeFirst();
  const workflowExists = async (taskId: string) => {
    try {
      await stack.world.client.workflow.getHandle(`task-${taskId}`).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw err;
    }
  };

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack();
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'reconcile' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
    const [host, port] = stack.config.temporal.address.split(':');
    proxy = await startStallProxy({ host: host!, port: Number(port) });
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      for (const [i, a] of apis.entries()) process.stderr.write(`--- API process ${i + 1} output ---\n${a.output.slice(-60).join('\n')}\n`);
    }
  });

  after(async function () {
    for (const a of apis) {
      if (a.child.exitCode === null && a.child.signalCode === null) {
        a.child.kill('SIGKILL');
        await a.exited;
      }
    }
    await proxy?.stop();
    await stack?.stop();
    await oracle?.stop();
  });

  it('answers 202 when the start fails, and a fresh API starts every stored task exactly once — except one canceled meanwhile', async function () {
    // The first API's own reconciler waits longer than this test: only the second API's may start anything.
    const first = await startApiProcess(proxy.address, '10m');
    proxy.stall();

    // Accepted while Temporal hangs: the start gives up, the answer is still 202, the task stays queued.
    const [acceptedRes, toCancelRes] = await Promise.all([submitTo(first, 'accepted'), submitTo(first, 'canceled before it started')]);
    assert.equal(acceptedRes.status, 202, await acceptedRes.clone().text());
    const accepted = (await acceptedRes.json()) as { id: string; status: string };
    const toCancel = (await toCancelRes.json()) as { id: string; status: string };
    assert.equal(accepted.status, 'queued');
    assert.equal(toCancelRes.status, 202);
    // The log line travels through a pipe and may arrive just after the answer.
    await until('the failed start to be logged', () => first.output.some((l) => l.includes('its workflow did not start') && l.includes(accepted.id)), 10_000, 50);

    // Killed mid-submission: the row is stored, the start is stuck in the stalled connection.
    const killedRequest = submitTo(first, 'killed').catch((err: unknown) => err);
    await until('the third task row to be stored', async () => (await taskWithText('killed')) !== undefined, 20_000);
    first.child.kill('SIGKILL');
    assert.equal((await first.exited).signal, 'SIGKILL');
    assert.ok((await killedRequest) instanceof Error, 'the client never got an answer');
    const killed = (await taskWithText('killed'))!;

    const db = stack.world.db;
    for (const id of [accepted.id, toCancel.id, killed.id]) {
      const row = await db.selectFrom('tasks').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
      assert.equal(row.status, 'queued');
      assert.equal(row.workflow_started_at, null);
      assert.equal(await workflowExists(id), false, 'no workflow reached Temporal');
      const events = await stack.world.events.list(id, 0);
      assert.deepEqual(events.map((e) => [e.seq, e.type, e.data.status]), [[1, 'status', 'queued']], 'the row came with its first event');
    }

    // Canceled while nothing runs it: ended here, and never started later.
    const cancel = await stack.api('POST', `/v1/tasks/${toCancel.id}/cancel`, { token });
    assert.equal(cancel.status, 202, cancel.text);
    assert.equal(cancel.body.status, 'canceled');

    const second = await startApiProcess(stack.config.temporal.address, '1s');
    for (const id of [accepted.id, killed.id]) {
      const done = await stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled'], 60_000);
      assert.equal(done.status, 'succeeded', JSON.stringify(done));
    }
    assert.ok(second.output.some((l) => l.includes('started the workflows of tasks left unstarted')));
    assert.equal(oracle.callCount('echo'), 2, 'each stored task ran exactly once');

    for (const [id, text] of [[accepted.id, 'accepted'], [killed.id, 'killed']] as const) {
      const results = await db.selectFrom('results').selectAll().where('task_id', '=', id).execute();
      assert.equal(results.length, 1);
      assert.deepEqual(JSON.parse(results[0]!.content!.toString()).content, [{ type: 'text', text }]);
      const row = await db.selectFrom('tasks').select('workflow_started_at').where('id', '=', id).executeTakeFirstOrThrow();
      assert.ok(row.workflow_started_at, 'the start is recorded');
      const events = await stack.world.events.list(id, 0);
      assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'seqs are 1..n');
      const statuses = events.filter((e) => e.type === 'status').map((e) => e.data.status as string);
      assert.equal(statuses[0], 'queued');
      assert.deepEqual(statuses.filter((s) => ['succeeded', 'failed', 'canceled'].includes(s)), ['succeeded']);
    }

    // Rounds keep running; the canceled task is never started.
    await sleep(1500);
    const canceledRow = await db.selectFrom('tasks').selectAll().where('id', '=', toCancel.id).executeTakeFirstOrThrow();
    assert.equal(canceledRow.status, 'canceled');
    assert.equal(canceledRow.workflow_started_at, null);
    assert.equal(await workflowExists(toCancel.id), false);
    const canceledEvents = await stack.world.events.list(toCancel.id, 0);
    assert.deepEqual(canceledEvents.map((e) => e.type), ['status', 'error', 'status']);
    assert.equal(canceledEvents.at(-1)!.data.status, 'canceled');
  });
});

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { sharedTemporal } from '../support/shared-temporal.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { until } from '../support/until.ts';

// The worker runs as a real `orchestrator worker` process, so it can be killed the hard way mid-dispatch.

interface WorkerProcess {
  child: ChildProcess;
  output: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('worker killed mid-dispatch', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;
  let bundleDir: string;
  let bundlePath: string;
  const workers: WorkerProcess[] = [];

  /** The same configuration the stack runs with, as the environment of a worker process. */
  function workerEnv(): NodeJS.ProcessEnv {
    const c = stack.config;
    return {
      ...process.env,
      DATABASE_URL: c.databaseUrl,
      REDIS_URL: c.redisUrl,
      REDIS_PREFIX: c.redisPrefix,
      TEMPORAL_ADDRESS: c.temporal.address,
      TEMPORAL_NAMESPACE: c.temporal.namespace,
      TASK_QUEUE: c.temporal.taskQueue,
      JWT_SECRET: c.jwt.secret!,
      ENCRYPTION_KEY: c.encryptionKey,
      RESULT_STORE: c.results.store,
      RESULT_INLINE_MAX_BYTES: String(c.results.inlineMaxBytes),
      MAX_CONCURRENT_JOBS: String(c.limits.maxConcurrentJobs),
      HEARTBEAT_TIMEOUT: `${c.task.heartbeatTimeoutMs}ms`,
      DISPATCH_RETRY_INITIAL: `${c.task.retryInitialMs}ms`,
      DISPATCH_RETRY_MAX: `${c.task.retryMaxMs}ms`,
      PROBE_TIMEOUT: `${c.task.probeTimeoutMs}ms`,
      TOOL_TIMEOUT: `${c.task.toolTimeoutMs}ms`,
      CONSENT_TIMEOUT: `${c.task.consentTimeoutMs}ms`,
      WORKER_METRICS_PORT: '0',
      // The MCP server of this test listens on 127.0.0.1.
      OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128',
      LOG_LEVEL: 'info',
      // The run's shared bundle, loaded the way production workers load `orchestrator bundle` output.
      WORKFLOW_BUNDLE: bundlePath,
    };
  }

  /** Starts `orchestrator worker` and resolves once it polls the task queue. */
  async function startWorkerProcess(): Promise<WorkerProcess> {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'worker'], {
      cwd: PROJECT_ROOT,
      env: workerEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const output: string[] = [];
    const collect = (chunk: Buffer) => output.push(...String(chunk).split('\n').filter(Boolean));
    child.stdout!.on('data', collect);
    child.stderr!.on('data', collect);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const w = { child, output, exited };
    workers.push(w);
    let gone = false;
    void exited.then(() => (gone = true));
    await until('the worker process to report "worker running"', () => {
      if (gone) throw new Error(`worker process exited during start:\n${output.join('\n')}`);
      return output.some((l) => l.includes('worker running'));
    }, 60_000, 50);
    return w;
  }

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ worker: false, env: { HEARTBEAT_TIMEOUT: '2s' } });
    bundleDir = await mkdtemp(path.join(os.tmpdir(), 'orch-bundle-'));
    bundlePath = path.join(bundleDir, 'workflow-bundle.js');
    await writeFile(bundlePath, (await sharedTemporal()).bundle.code);
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'crash' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
  });

  afterEach(function () {
    if (this.currentTest?.state === 'failed') {
      for (const [i, w] of workers.entries()) process.stderr.write(`--- worker process ${i + 1} output ---\n${w.output.slice(-80).join('\n')}\n`);
    }
  });

  after(async function () {
    if (bundleDir) await rm(bundleDir, { recursive: true, force: true });
    for (const w of workers) {
      if (w.child.exitCode === null && w.child.signalCode === null) {
        w.child.kill('SIGKILL');
        await w.exited;
      }
    }
    await stack?.stop();
    await oracle?.stop();
  });

  it('re-dispatches on a new worker and finishes with exactly one result', async function () {
    const first = await startWorkerProcess();

    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 4000, steps: 4 } } });
    assert.equal(submit.status, 202, submit.text);
    const id: string = submit.body.id;

    await until('the slow call to be running on the MCP server', () => oracle.inFlight() === 1, 30_000);
    assert.equal(oracle.callCount('slow'), 1);
    first.child.kill('SIGKILL');
    const exit = await first.exited;
    assert.equal(exit.signal, 'SIGKILL');
    // The killed worker's connection dropped, so the server aborted the call.
    await until('the killed call to end on the MCP server', () => oracle.inFlight() === 0, 10_000);
    const mid = await stack.api('GET', `/v1/tasks/${id}`, { token });
    assert.equal(mid.body.status, 'running', 'the task is not terminal while its worker is gone');

    await startWorkerProcess();
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled'], 60_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.match(done.result.content[0].text, /^done after \d+ ms$/);
    assert.deepEqual(done.attempts.map((a: { outcome: string }) => a.outcome), ['succeeded'], 'an activity retry is not a failed attempt');
    assert.ok(oracle.callCount('slow') >= 2, `the call was re-dispatched (calls: ${oracle.callCount('slow')})`);

    const db = stack.world.db;
    const results = await db.selectFrom('results').selectAll().where('task_id', '=', id).execute();
    assert.equal(results.length, 1, 'exactly one stored result');
    assert.deepEqual(JSON.parse(results[0]!.content!.toString()), done.result);

    const events = await db.selectFrom('task_events').selectAll().where('task_id', '=', id).orderBy('seq').execute();
    assert.deepEqual(events.map((e) => e.seq), events.map((_, i) => i + 1), 'seqs are 1..n with no gap');
    assert.equal(events.filter((e) => e.type === 'result').length, 1, 'exactly one result event');
    assert.equal(events.filter((e) => e.type === 'error').length, 0, 'no error event');
    const statuses = events.filter((e) => e.type === 'status').map((e) => (e.data as { status: string }).status);
    const terminal = statuses.filter((s) => ['succeeded', 'failed', 'canceled'].includes(s));
    assert.deepEqual(terminal, ['succeeded'], `exactly one terminal status (statuses: ${statuses.join(', ')})`);
    assert.equal(statuses[0], 'queued');
    const firstIndex = (s: string) => statuses.indexOf(s);
    assert.ok(firstIndex('queued') < firstIndex('routing') && firstIndex('routing') < firstIndex('running'), `order: ${statuses.join(', ')}`);
    assert.equal(statuses.at(-1), 'succeeded');
    const last = events.at(-1)!;
    assert.equal(last.type, 'status', 'the terminal status is the last event');
    assert.equal(events.at(-2)!.type, 'result', 'the result event comes right before it');
    // The second worker announced its retry in the log.
    assert.ok(
      events.some((e) => e.type === 'progress' && Number((e.data as { attempt?: number }).attempt) >= 2),
      'a progress event reports the re-dispatch attempt',
    );
  });

  it('an agent run goes on after its worker is killed mid-step: the step finishes once, the next step gets its output', async function () {
    const alive = (w: WorkerProcess) => w.child.exitCode === null && w.child.signalCode === null;
    const worker = workers.find(alive) ?? (await startWorkerProcess());
    const define = await stack.api('POST', `/v1/projects/${projectId}/agents`, {
      token,
      body: {
        name: 'survivor',
        steps: [
          { id: 'wait', tool: 'slow', arguments: { ms: 4000, steps: 4 } },
          { id: 'after', tool: 'echo', arguments: { text: { $ref: 'steps.wait.output' } } },
        ],
      },
    });
    assert.equal(define.status, 201, define.text);
    oracle.resetStats();
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/survivor/runs`, { token, body: { input: {} } });
    assert.equal(started.status, 202, started.text);
    const runId: string = started.body.id;

    await until('the first step to be running on the MCP server', () => oracle.inFlight() === 1, 30_000);
    worker.child.kill('SIGKILL');
    assert.equal((await worker.exited).signal, 'SIGKILL');
    const mid = await stack.api('GET', `/v1/agent-runs/${runId}`, { token });
    assert.equal(mid.body.status, 'running', 'the run is not terminal while its worker is gone');

    await startWorkerProcess();
    let run: any;
    await until(
      'the run to end',
      async () => {
        run = (await stack.api('GET', `/v1/agent-runs/${runId}`, { token })).body;
        return ['succeeded', 'failed', 'canceled'].includes(run.status);
      },
      90_000,
      250,
    );
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    const byId = Object.fromEntries(run.steps.map((s: any) => [s.id, s]));
    assert.equal(byId.wait.status, 'succeeded');
    assert.equal(byId.after.status, 'succeeded');
    assert.ok(oracle.callCount('slow') >= 2, `the killed step was dispatched again (calls: ${oracle.callCount('slow')})`);
    const db = stack.world.db;
    const waitResults = await db.selectFrom('results').select('task_id').where('task_id', '=', byId.wait.taskId).execute();
    assert.equal(waitResults.length, 1, 'the killed step stored exactly one result');
    const after = await stack.api('GET', `/v1/tasks/${byId.after.taskId}`, { token });
    assert.match(after.body.result.content[0].text, /^done after \d+ ms$/, 'the next step got the first step\'s output');
    const steps = await db.selectFrom('agent_run_steps').select(['step_id', 'task_id']).where('run_id', '=', runId).where('task_id', 'is not', null).execute();
    assert.deepEqual(steps.map((s) => s.step_id).sort(), ['after', 'wait'], 'one task per step, none started twice');
  });
});

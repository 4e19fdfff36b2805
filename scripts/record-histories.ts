/**
 * Records one workflow history per path of the task workflow and of the agent run workflow, as the replay test's fixtures
 * (test/fixtures/histories/<scenario>.json; test/unit/workflow-replay.test.ts replays every one against the current
 * workflow code, so a change that would break running tasks fails the suite).
 *
 *   TEMPORAL_CLI=/path/to/temporal npx tsx scripts/record-histories.ts [--suffix NAME] [scenario ...]
 *
 * With --suffix, fixtures are written as <scenario>.<NAME>.json beside the others: how a workflow change behind
 * patched() keeps the histories of the old code (which running executions have) and adds ones of the new path.
 *
 * It runs the scenarios through the real system, as the integration tests do (test/support/stack.ts: a fresh
 * database, the shared local Redis, a Temporal dev server, MCP test servers on 127.0.0.1), and overwrites the
 * fixtures it records. Re-record only on purpose: after a workflow change that is meant to be incompatible and ships
 * with a versioning plan (patched() or a new workflow type), never to make a failing replay pass.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import proto from '@temporalio/proto';
import { startTestMcpServer, type TestMcpServer } from '../test/support/mcp-test-server.ts';
import { stopSharedTemporal } from '../test/support/shared-temporal.ts';
import { startStack, type Stack } from '../test/support/stack.ts';

const OUT_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../test/fixtures/histories');
const SPACE_TOKEN = 'hf_recording_token_not_a_secret_0000000000';

interface World {
  stack: Stack;
  token: string;
  projectId: string;
  oracle: TestMcpServer;
  space: TestMcpServer;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function submit(w: World, body: Record<string, unknown>): Promise<string> {
  const r = await w.stack.api('POST', '/v1/tasks', { token: w.token, body: { projectId: w.projectId, ...body } });
  if (r.status !== 202) throw new Error(`submit failed: ${r.text}`);
  return r.body.id as string;
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Each scenario returns the task id whose history it recorded, after checking the task ended as the path says. */
const SCENARIOS: Record<string, (w: World) => Promise<string>> = {
  // `slow` is heavy on the one registered server (it runs on the bound Space, the oracle being the consent fallback);
  // every other tool is light and runs on the oracle.
  async light(w) {
    const id = await submit(w, { tool: 'echo', arguments: { text: 'hello' } });
    await expectStatus(w, id, 'succeeded');
    return `task-${id}`;
  },

  async 'light-fresh'(w) {
    // Right after `light` probed the oracle: the plan marks it fresh and no probe activity runs.
    const id = await submit(w, { tool: 'echo', arguments: { text: 'again' } });
    await expectStatus(w, id, 'succeeded');
    return `task-${id}`;
  },

  async 'heavy-space'(w) {
    const id = await submit(w, { tool: 'slow', arguments: { ms: 300, steps: 3 } });
    await expectStatus(w, id, 'succeeded');
    return `task-${id}`;
  },

  async 'fallback-consent'(w) {
    w.space.mode = 'down';
    try {
      const id = await submit(w, { tool: 'slow', arguments: { ms: 10 } });
      await w.stack.waitForStatus(w.token, id, ['awaiting_consent']);
      await w.stack.api('POST', `/v1/tasks/${id}/consent`, { token: w.token, body: { grant: true } });
      await expectStatus(w, id, 'succeeded');
      return `task-${id}`;
    } finally {
      w.space.mode = 'up';
    }
  },

  async 'consent-denied'(w) {
    w.space.mode = 'down';
    try {
      const id = await submit(w, { tool: 'slow', arguments: { ms: 10 } });
      await w.stack.waitForStatus(w.token, id, ['awaiting_consent']);
      await w.stack.api('POST', `/v1/tasks/${id}/consent`, { token: w.token, body: { grant: false } });
      await expectStatus(w, id, 'failed');
      return `task-${id}`;
    } finally {
      w.space.mode = 'up';
    }
  },

  async canceled(w) {
    const id = await submit(w, { tool: 'slow', arguments: { ms: 20_000, steps: 20 } });
    await w.stack.waitForStatus(w.token, id, ['running']);
    await until('the call to start', () => w.space.inFlight() > 0);
    await w.stack.api('POST', `/v1/tasks/${id}/cancel`, { token: w.token });
    await expectStatus(w, id, 'canceled');
    return `task-${id}`;
  },

  async 'large-result'(w) {
    const id = await submit(w, { tool: 'large', arguments: { bytes: 64 * 1024 } });
    await expectStatus(w, id, 'succeeded');
    const task = (await w.stack.api('GET', `/v1/tasks/${id}`, { token: w.token })).body;
    if (task.result?.storage === 'inline') throw new Error('the large result was stored inline, not staged');
    return `task-${id}`;
  },

  async 'slot-wait'(w) {
    // MAX_CONCURRENT_JOBS is 1 here: the second task waits on workflow timers for the first one's slot.
    const holder = await submit(w, { tool: 'slow', arguments: { ms: 1500 } });
    await until('the holder to run', () => w.space.inFlight() > 0);
    const id = await submit(w, { tool: 'echo', arguments: { text: 'waited' } });
    await expectStatus(w, id, 'succeeded');
    await expectStatus(w, holder, 'succeeded');
    return `task-${id}`;
  },

  async 'agent-fan-out'(w) {
    // A value step, a forEach fan-out of child task workflows, and a value step gathering them.
    const id = await runAgent(w, 'fan-out', [
      { id: 'list', kind: 'value', arguments: { items: ['a', 'b'] } },
      { id: 'each', tool: 'echo', forEach: { $ref: 'steps.list.output.items' }, arguments: { text: { $ref: 'item' } } },
      { id: 'gather', kind: 'value', arguments: { all: { $ref: 'steps.each.output' } } },
    ]);
    await expectRunStatus(w, id, 'succeeded');
    return `agent-run-${id}`;
  },

  async 'agent-step-failed'(w) {
    const id = await runAgent(w, 'failing', [
      { id: 'boom', tool: 'fail', arguments: { message: 'recorded failure' } },
      { id: 'after', tool: 'echo', dependsOn: ['boom'], arguments: { text: 'never' } },
    ]);
    await expectRunStatus(w, id, 'failed');
    return `agent-run-${id}`;
  },
};

async function runAgent(w: World, name: string, steps: unknown[]): Promise<string> {
  const def = await w.stack.api('POST', `/v1/projects/${w.projectId}/agents`, { token: w.token, body: { name, steps } });
  if (def.status !== 201) throw new Error(`agent definition refused: ${def.text}`);
  const run = await w.stack.api('POST', `/v1/projects/${w.projectId}/agents/${name}/runs`, { token: w.token, body: { input: {} } });
  if (run.status !== 202) throw new Error(`run refused: ${run.text}`);
  return run.body.id as string;
}

async function expectRunStatus(w: World, id: string, status: string): Promise<void> {
  await w.stack.world.client.workflow.getHandle(`agent-run-${id}`).result().catch(() => undefined);
  const run = (await w.stack.api('GET', `/v1/agent-runs/${id}`, { token: w.token })).body;
  if (run.status !== status) throw new Error(`run ${id} ended ${run.status}, expected ${status}: ${JSON.stringify(run)}`);
}

async function expectStatus(w: World, id: string, status: string): Promise<void> {
  const task = await w.stack.waitForStatus(w.token, id, ['succeeded', 'failed', 'canceled'], 60_000);
  if (task.status !== status) throw new Error(`task ${id} ended ${task.status}, expected ${status}: ${JSON.stringify(task)}`);
  // The row is written just before the workflow closes: wait for the close so the history is complete.
  await w.stack.world.client.workflow.getHandle(`task-${id}`).result().catch(() => undefined);
}

/**
 * Plain protobuf JSON (enums by name, 64-bit ints and bytes as strings); the replay test reads it back with
 * History.fromObject. (The SDK's historyToJSON trips over two copies of protobufjs in this install.)
 */
function historyJson(history: proto.temporal.api.history.v1.IHistory): string {
  const History = proto.temporal.api.history.v1.History;
  return JSON.stringify(History.toObject(History.fromObject(history), { longs: String, enums: String, bytes: String }), null, 1);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const at = args.indexOf('--suffix');
  const suffix = at >= 0 ? args.splice(at, 2)[1] : undefined;
  if (at >= 0 && !suffix) throw new Error('--suffix needs a name');
  const wanted = args;
  for (const name of wanted) if (!SCENARIOS[name]) throw new Error(`unknown scenario "${name}"; known: ${Object.keys(SCENARIOS).join(', ')}`);
  const oracle = await startTestMcpServer({ name: 'oracle' });
  const space = await startTestMcpServer({ name: 'space', requireBearer: SPACE_TOKEN });
  const stack = await startStack({ env: { MAX_CONCURRENT_JOBS: '1', RESULT_INLINE_MAX_BYTES: '1024', LOG_LEVEL: 'warn' } });
  try {
    const token = await stack.token('recorder');
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'histories' } })).body.id as string;
    const scanner = await stack.api('POST', '/v1/mcps', {
      token,
      body: { name: 'scanner', oracleUrl: oracle.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['slow'] },
    });
    if (scanner.status !== 201) throw new Error(scanner.text);
    const bind = await stack.api('PUT', `/v1/projects/${projectId}/spaces/scanner`, { token, body: { url: space.url, token: SPACE_TOKEN } });
    if (bind.status !== 200) throw new Error(bind.text);
    const w: World = { stack, token, projectId, oracle, space };
    await mkdir(OUT_DIR, { recursive: true });
    for (const [name, run] of Object.entries(SCENARIOS)) {
      if (wanted.length > 0 && !wanted.includes(name)) continue;
      const workflowId = await run(w);
      const history = await stack.world.client.workflow.getHandle(workflowId).fetchHistory();
      await writeFile(path.join(OUT_DIR, `${name}${suffix ? `.${suffix}` : ''}.json`), `${historyJson(history)}\n`);
      process.stdout.write(`${name}: ${history.events?.length ?? 0} events\n`);
    }
  } finally {
    await stack.stop();
    await Promise.all([oracle.stop(), space.stop()]);
    await stopSharedTemporal();
  }
}

await main();

import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Agent runs end to end: a parent agentRunWorkflow starting child task workflows against a real MCP server.

describe('agent runs: parent workflow with child tasks', function () {
  let stack: Stack;
  let mcp: TestMcpServer;
  let alice: string;
  let projectId: string;

  before(async function () {
    mcp = await startTestMcpServer({ name: 'agent-tools' });
    stack = await startStack({ env: { AGENT_MAX_PARALLEL: '2' } });
    alice = await stack.token('alice');
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: mcp.url } })).status, 201);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'runs' } })).body.id;
  });

  after(async function () {
    await stack?.stop();
    await mcp?.stop();
  });

  async function define(name: string, steps: unknown[], inputSchema?: unknown) {
    const res = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name, steps, ...(inputSchema ? { inputSchema } : {}) } });
    assert.equal(res.status, 201, res.text);
  }
  async function waitRun(id: string, statuses: string[], timeoutMs = 60_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice });
      assert.equal(r.status, 200, r.text);
      if (statuses.includes(r.body.status)) return r.body;
      if (Date.now() > deadline) throw new Error(`run stayed ${r.body.status}: ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, 150));
    }
  }

  it('runs a fan-out and a fan-in: outputs pass between steps, each item is a real task', async function () {
    await define(
      'fan',
      [
        { id: 'list', tool: 'echo', arguments: { text: { $ref: 'input.files' } } },
        { id: 'each', tool: 'echo', forEach: { $ref: 'steps.list.output' }, arguments: { text: { $ref: 'item.name' } } },
        { id: 'gather', kind: 'value', arguments: { all: { $ref: 'steps.each.output' }, first: { $ref: 'steps.list.output.0.name' } } },
        { id: 'last', tool: 'echo', arguments: { text: { $ref: 'steps.gather.output.first' } } },
      ],
      { type: 'object', properties: { files: { type: 'string' } }, required: ['files'] },
    );
    const files = JSON.stringify([{ name: 'a.py' }, { name: 'b.py' }, { name: 'c.py' }]);
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/fan/runs`, { token: alice, body: { input: { files } } });
    assert.equal(started.status, 202, started.text);
    const run = await waitRun(started.body.id, ['succeeded', 'failed']);
    assert.equal(run.status, 'succeeded', JSON.stringify(run));
    const byId = Object.fromEntries(run.steps.map((s: any) => [s.id, s]));
    assert.deepEqual(Object.values(byId).map((s: any) => s.status), ['succeeded', 'succeeded', 'succeeded', 'succeeded']);
    assert.equal(byId.each.items.length, 3);
    const itemTexts = [];
    for (const item of byId.each.items) {
      const task = await stack.api('GET', `/v1/tasks/${item.taskId}`, { token: alice });
      assert.equal(task.body.status, 'succeeded');
      itemTexts.push(task.body.result.content[0].text);
    }
    assert.deepEqual(itemTexts, ['a.py', 'b.py', 'c.py']);
    const gathered = await stack.world.db.selectFrom('agent_run_steps').select('output').where('run_id', '=', run.id).where('step_id', '=', 'gather').executeTakeFirstOrThrow();
    assert.deepEqual(gathered.output, { all: ['a.py', 'b.py', 'c.py'], first: 'a.py' });
    const last = await stack.api('GET', `/v1/tasks/${byId.last.taskId}`, { token: alice });
    assert.equal(last.body.result.content[0].text, 'a.py');
    assert.ok(mcp.maxInFlight() <= 2, `at most AGENT_MAX_PARALLEL calls at once (saw ${mcp.maxInFlight()})`);

    const bad = await stack.api('POST', `/v1/projects/${projectId}/agents/fan/runs`, { token: alice, body: { input: { nofiles: 1 } } });
    assert.equal(bad.status, 422);
    assert.equal(bad.body.code, 'InvalidInput');
  });

  it('a failed step fails the run naming it; steps that needed it are skipped', async function () {
    await define('failing', [
      { id: 'ok', tool: 'echo', arguments: { text: 'fine' } },
      { id: 'boom', tool: 'fail', dependsOn: ['ok'], arguments: { message: 'broken on purpose' } },
      { id: 'after', tool: 'echo', arguments: { text: { $ref: 'steps.boom.output' } } },
    ]);
    const started = await stack.api('POST', `/v1/projects/${projectId}/agents/failing/runs`, { token: alice, body: { input: {} } });
    const run = await waitRun(started.body.id, ['succeeded', 'failed']);
    assert.equal(run.status, 'failed');
    assert.equal(run.error.step, 'boom');
    assert.match(run.error.message, /step "boom"/);
    assert.deepEqual(run.steps.map((s: any) => s.status), ['succeeded', 'failed', 'skipped']);
  });

  it('cancel mid-run cancels the running step; the same Idempotency-Key joins the same run', async function () {
    await define('slowpoke', [{ id: 'nap', tool: 'slow', arguments: { ms: 20_000 } }, { id: 'then', tool: 'echo', dependsOn: ['nap'], arguments: { text: 'x' } }]);
    const headers = { 'Idempotency-Key': 'run-once' };
    const first = await stack.api('POST', `/v1/projects/${projectId}/agents/slowpoke/runs`, { token: alice, body: { input: {} }, headers });
    const again = await stack.api('POST', `/v1/projects/${projectId}/agents/slowpoke/runs`, { token: alice, body: { input: {} }, headers });
    assert.equal(again.status, 202);
    assert.equal(again.body.id, first.body.id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');
    const other = await stack.api('POST', `/v1/projects/${projectId}/agents/slowpoke/runs`, { token: alice, body: { input: { x: 1 } }, headers });
    assert.equal(other.status, 409);

    let taskId: string | undefined;
    const deadline = Date.now() + 30_000;
    while (!taskId && Date.now() < deadline) {
      const r = await stack.api('GET', `/v1/agent-runs/${first.body.id}`, { token: alice });
      taskId = r.body.steps[0].taskId;
      if (!taskId) await new Promise((res) => setTimeout(res, 100));
    }
    assert.ok(taskId, 'the first step started');
    await stack.waitForStatus(alice, taskId!, ['running']);
    const canceled = await stack.api('POST', `/v1/agent-runs/${first.body.id}/cancel`, { token: alice });
    assert.equal(canceled.status, 202, canceled.text);
    const run = await waitRun(first.body.id, ['canceled', 'failed', 'succeeded']);
    assert.equal(run.status, 'canceled');
    assert.deepEqual(run.steps.map((s: any) => s.status), ['canceled', 'skipped']);
    assert.equal((await stack.waitForStatus(alice, taskId!, ['canceled', 'succeeded', 'failed'])).status, 'canceled');
    assert.equal((await stack.api('POST', `/v1/agent-runs/${first.body.id}/cancel`, { token: alice })).status, 409);
  });
});

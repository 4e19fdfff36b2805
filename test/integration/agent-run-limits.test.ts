import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// A run's step tasks count toward the project's active-task limit like submitted tasks: while they run, submissions
// are refused; at the limit a step waits (logged as step.waiting) and starts once a slot is free.

describe('agent runs: the active-task limit', function () {
  let stack: Stack;
  let mcp: TestMcpServer;
  let alice: string;
  let projectId: string;

  before(async function () {
    mcp = await startTestMcpServer({ name: 'limit-tools' });
    stack = await startStack({ env: { MAX_ACTIVE_TASKS_PER_PROJECT: '1' } });
    alice = await stack.token('alice');
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: mcp.url } })).status, 201);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'limited' } })).body.id;
    const agent = await stack.api('POST', `/v1/projects/${projectId}/agents`, { token: alice, body: { name: 'one-slow-step', steps: [{ id: 'wait', tool: 'slow', arguments: { ms: 3000 } }] } });
    assert.equal(agent.status, 201, agent.text);
  });

  after(async function () {
    await stack?.stop();
    await mcp?.stop();
  });

  async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await probe();
      if (v !== undefined) return v;
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const run = async (id: string) => (await stack.api('GET', `/v1/agent-runs/${id}`, { token: alice })).body;
  const runEvents = (id: string) => stack.world.db.selectFrom('agent_run_events').select(['seq', 'type', 'data']).where('run_id', '=', id).orderBy('seq').execute();

  it('a running step task holds a slot; a second run\'s step waits for it, then runs', async function () {
    const first = (await stack.api('POST', `/v1/projects/${projectId}/agents/one-slow-step/runs`, { token: alice, body: { input: {} } })).body.id;
    const firstTask = await until('the first step task', async () => (await run(first)).steps[0].taskId as string | undefined);

    // The step's task is active: the project is at its limit for everyone.
    const refused = await stack.api('POST', '/v1/tasks', { token: alice, body: { projectId, tool: 'echo', arguments: { text: 'x' } } });
    assert.equal(refused.status, 429, refused.text);
    assert.equal(refused.body.code, 'TooManyActiveTasks');

    const second = (await stack.api('POST', `/v1/projects/${projectId}/agents/one-slow-step/runs`, { token: alice, body: { input: {} } })).body.id;
    const waiting = await until('step.waiting', async () => (await runEvents(second)).find((e) => e.type === 'step.waiting'));
    assert.deepEqual(waiting.data, { step: 'wait', reason: 'TooManyActiveTasks', activeTasksLimit: 1 });
    const secondView = await run(second);
    assert.equal(secondView.status, 'running');
    assert.equal(secondView.steps[0].taskId, undefined, 'no task was created past the limit');
    const firstStatus = (await stack.api('GET', `/v1/tasks/${firstTask}`, { token: alice })).body.status;
    assert.ok(!['succeeded', 'failed', 'canceled'].includes(firstStatus), `the first step still holds the slot (${firstStatus})`);

    const done = await until('both runs to end', async () => {
      const [a, b] = await Promise.all([run(first), run(second)]);
      return ['succeeded', 'failed', 'canceled'].includes(b.status) && ['succeeded', 'failed', 'canceled'].includes(a.status) ? [a, b] : undefined;
    }, 90_000);
    assert.deepEqual(done.map((r) => r.status), ['succeeded', 'succeeded']);
    const types = (await runEvents(second)).map((e) => (e.type === 'step' ? `step ${(e.data as any).status}` : e.type === 'status' ? `status ${(e.data as any).status}` : e.type));
    assert.deepEqual(types, ['status queued', 'status running', 'step running', 'step.waiting', 'step started', 'step succeeded', 'status succeeded'], 'logged once, however often it was retried');
    assert.equal(mcp.callCount('slow'), 2);
    // The two step tasks never overlapped.
    const tasks = await stack.world.db.selectFrom('tasks').select(['created_at', 'finished_at']).where('project_id', '=', projectId).where('tool', '=', 'slow').orderBy('created_at').execute();
    assert.equal(tasks.length, 2);
    assert.ok(tasks[1]!.created_at >= tasks[0]!.finished_at!, 'the second step task was created after the first finished');
  });
});

import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

// What a tool sees of the orchestrator's dispatches: the task's idempotency key in `_meta`, and one MCP session
// reused by probes and calls rather than a handshake per call.
describe('dispatch: idempotency key and MCP session reuse', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ env: { DISPATCH_RETRY_INITIAL: '100ms', PROBE_FRESH: '0s' } });
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'demo' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  beforeEach(() => oracle.resetStats());

  async function run(text: string): Promise<string> {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text } } });
    assert.equal(submit.status, 202, submit.text);
    await readEvents(`${stack.url}/v1/tasks/${submit.body.id}/events`, { token, timeoutMs: 30_000 });
    const task = await stack.api('GET', `/v1/tasks/${submit.body.id}`, { token });
    assert.equal(task.body.status, 'succeeded', task.text);
    return submit.body.id as string;
  }

  it('sends the task id as idempotency key in _meta, the same on every attempt, with the attempt number', async function () {
    oracle.failNextCalls = 1;
    const id = await run('retried');
    assert.equal(oracle.callCount('echo'), 1, 'the failed attempt never reached the tool');
    const metas = oracle.seenCallMeta();
    // The dispatch asks for progress, so each try also carries a progress token of its own.
    assert.ok(metas.every((m) => typeof m?.progressToken === 'string'));
    assert.notEqual(metas[0]?.progressToken, metas[1]?.progressToken);
    assert.deepEqual(metas.map((m) => ({ ...m, progressToken: undefined })), [
      { 'dev.orchestrator/task': { id, attempt: 1, idempotencyKey: id }, progressToken: undefined },
      { 'dev.orchestrator/task': { id, attempt: 2, idempotencyKey: id }, progressToken: undefined },
    ]);
  });

  it('reuses one MCP session for the probes and dispatches of many tasks', async function () {
    // The session may already be open from the test before: at most one handshake for all of these.
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push(await run(`task ${i}`));
    await Promise.all([run('a'), run('b'), run('c')]);
    assert.equal(oracle.callCount('echo'), 6);
    assert.ok(oracle.initializeCount() <= 1, `initialize requests: ${oracle.initializeCount()}`);
    // Every probe (PROBE_FRESH=0s) and call went to the server: a probe plus a call per task, plus nothing else.
    assert.equal(oracle.requestCount(), 12 + oracle.initializeCount() * 2);
    assert.deepEqual(
      oracle.seenCallMeta().map((m) => (m?.['dev.orchestrator/task'] as { id: string }).id).slice(0, 3),
      ids,
    );
  });
});

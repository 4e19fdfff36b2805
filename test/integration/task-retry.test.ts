import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type ApiResponse, type Stack } from '../support/stack.ts';

const TERMINAL = ['succeeded', 'failed', 'canceled'];

function assertProblem(r: ApiResponse, status: number, code: string): void {
  assert.equal(r.status, status, r.text);
  assert.match(r.headers.get('content-type') ?? '', /application\/problem\+json/);
  assert.equal(r.body.code, code, r.text);
}

describe('park and resume: retrying failed and canceled tasks', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let alice: string;
  let bob: string;
  let mallory: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack();
    alice = await stack.token('alice');
    bob = await stack.token('bob');
    mallory = await stack.token('mallory');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'retry' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
    const added = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'bob', role: 'viewer' } });
    assert.equal(added.status, 201, added.text);
  });

  afterEach(function () {
    oracle.mode = 'up';
    if (this.currentTest?.state === 'failed') process.stderr.write(`${stack.logLines.slice(-60).join('\n')}\n`);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  const submit = async (project: string, tool: string, args: Record<string, unknown>) => {
    const r = await stack.api('POST', '/v1/tasks', { token: alice, body: { projectId: project, tool, arguments: args } });
    assert.equal(r.status, 202, r.text);
    return r.body.id as string;
  };
  /** A task that fails because its only server is down. */
  const failedTask = async (project: string, tool: string, args: Record<string, unknown>) => {
    oracle.mode = 'down';
    const id = await submit(project, tool, args);
    const t = await stack.waitForStatus(alice, id, TERMINAL);
    assert.equal(t.status, 'failed', JSON.stringify(t));
    return id;
  };
  const canceledTask = async (project: string) => {
    const id = await submit(project, 'slow', { ms: 60_000 });
    await stack.waitForStatus(alice, id, ['running']);
    assert.equal((await stack.api('POST', `/v1/tasks/${id}/cancel`, { token: alice })).status, 202);
    assert.equal((await stack.waitForStatus(alice, id, TERMINAL)).status, 'canceled');
    return id;
  };
  const taskCount = async () => Number((await stack.world.db.selectFrom('tasks').select((eb) => eb.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n);

  it('reruns a failed task with the same arguments once the cause is fixed, linked to it, and only once', async function () {
    const failedId = await failedTask(projectId, 'echo', { text: 'parked' });
    oracle.mode = 'up';

    const r = await stack.api('POST', `/v1/tasks/${failedId}/retry`, { token: alice });
    assert.equal(r.status, 202, r.text);
    assert.notEqual(r.body.id, failedId);
    assert.equal(r.body.retryOf, failedId);
    assert.equal(r.body.tool, 'echo');
    assert.equal(r.headers.get('location'), `/v1/tasks/${r.body.id}`);

    const done = await stack.waitForStatus(alice, r.body.id, TERMINAL);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.deepEqual(done.result.content, [{ type: 'text', text: 'parked' }]);
    assert.equal(done.retryOf, failedId);
    assert.equal((await stack.api('GET', `/v1/tasks/${failedId}`, { token: alice })).body.status, 'failed', 'the old task stays as it ended');

    const db = stack.world.db;
    const row = await db.selectFrom('tasks').selectAll().where('id', '=', r.body.id).executeTakeFirstOrThrow();
    assert.deepEqual(row.arguments, { text: 'parked' });
    assert.equal(row.retry_of, failedId);
    assert.ok(row.workflow_started_at, 'its workflow start is recorded');
    const first = await stack.world.events.list(r.body.id, 0, 1);
    assert.deepEqual(first[0]!.data, { status: 'queued', retryOf: failedId }, 'the first event says what it reruns');

    const again = await stack.api('POST', `/v1/tasks/${failedId}/retry`, { token: alice });
    assertProblem(again, 409, 'AlreadyRetried');
    assert.equal(again.body.retriedAs, r.body.id);
    assert.equal((await db.selectFrom('tasks').select('id').where('retry_of', '=', failedId).execute()).length, 1);
  });

  it('refuses to retry a task that succeeded or is still running (409), and retries a canceled one', async function () {
    const ok = await submit(projectId, 'echo', { text: 'fine' });
    assert.equal((await stack.waitForStatus(alice, ok, TERMINAL)).status, 'succeeded');
    const before = await taskCount();
    const r1 = await stack.api('POST', `/v1/tasks/${ok}/retry`, { token: alice });
    assertProblem(r1, 409, 'TaskNotRetryable');
    assert.equal(r1.body.taskStatus, 'succeeded');

    const running = await submit(projectId, 'slow', { ms: 60_000 });
    await stack.waitForStatus(alice, running, ['running']);
    const r2 = await stack.api('POST', `/v1/tasks/${running}/retry`, { token: alice });
    assertProblem(r2, 409, 'TaskNotRetryable');
    assert.equal(r2.body.taskStatus, 'running');
    assert.equal(await taskCount(), before + 1, 'a refused retry creates nothing');

    assert.equal((await stack.api('POST', `/v1/tasks/${running}/cancel`, { token: alice })).status, 202);
    assert.equal((await stack.waitForStatus(alice, running, TERMINAL)).status, 'canceled');
    const r3 = await stack.api('POST', `/v1/tasks/${running}/retry`, { token: alice });
    assert.equal(r3.status, 202, r3.text);
    assert.equal(r3.body.retryOf, running);
    await stack.waitForStatus(alice, r3.body.id, ['running']);
    assert.equal((await stack.api('POST', `/v1/tasks/${r3.body.id}/cancel`, { token: alice })).status, 202);
  });

  it('hides tasks from strangers (404) and refuses viewers (403), creating nothing', async function () {
    const failedId = await failedTask(projectId, 'echo', { text: 'private' });
    oracle.mode = 'up';
    const before = await taskCount();

    assertProblem(await stack.api('POST', `/v1/tasks/${failedId}/retry`, { token: mallory }), 404, 'TaskNotFound');
    assertProblem(await stack.api('POST', `/v1/tasks/${randomUUID()}/retry`, { token: alice }), 404, 'TaskNotFound');
    assertProblem(await stack.api('POST', '/v1/tasks/not-a-uuid/retry', { token: alice }), 404, 'TaskNotFound');
    assertProblem(await stack.api('POST', `/v1/tasks/${failedId}/retry`, { token: bob }), 403, 'Forbidden');
    assertProblem(await stack.api('POST', '/v1/tasks/retry', { token: mallory, body: { projectId } }), 404, 'ProjectNotFound');
    assertProblem(await stack.api('POST', '/v1/tasks/retry', { token: bob, body: { projectId } }), 403, 'Forbidden');
    assert.equal((await stack.api('POST', `/v1/tasks/${failedId}/retry`)).status, 401);
    assert.equal(await taskCount(), before, 'nothing was created');
  });

  it('bulk: reruns by status and tool, oldest first, each task once', async function () {
    const p = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'bulk' } })).body.id as string;
    const echo1 = await failedTask(p, 'echo', { text: 'one' });
    const echo2 = await failedTask(p, 'echo', { text: 'two' });
    const who = await failedTask(p, 'whoami', {});
    oracle.mode = 'up';
    const ok = await submit(p, 'echo', { text: 'fine' });
    await stack.waitForStatus(alice, ok, ['succeeded']);
    const canceled = await canceledTask(p);

    const byTool = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId: p, status: 'failed', tool: 'echo' } });
    assert.equal(byTool.status, 202, byTool.text);
    assert.equal(byTool.body.count, 2);
    assert.equal(byTool.body.ids.length, 2);
    const db = stack.world.db;
    const reruns = await db.selectFrom('tasks').select(['id', 'retry_of', 'arguments']).where('id', 'in', byTool.body.ids).execute();
    assert.deepEqual(new Set(reruns.map((r) => r.retry_of)), new Set([echo1, echo2]));
    for (const id of byTool.body.ids) {
      const t = await stack.waitForStatus(alice, id, TERMINAL);
      assert.equal(t.status, 'succeeded', JSON.stringify(t));
    }
    const texts = await Promise.all(byTool.body.ids.map(async (id: string) => (await stack.api('GET', `/v1/tasks/${id}`, { token: alice })).body.result.content[0].text));
    assert.deepEqual(texts.sort(), ['one', 'two']);

    const byStatus = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId: p, status: 'canceled' } });
    assert.equal(byStatus.body.count, 1, byStatus.text);
    const [slowRerun] = byStatus.body.ids;
    assert.equal((await db.selectFrom('tasks').select('retry_of').where('id', '=', slowRerun).executeTakeFirstOrThrow()).retry_of, canceled);
    await stack.waitForStatus(alice, slowRerun, ['running']);
    assert.equal((await stack.api('POST', `/v1/tasks/${slowRerun}/cancel`, { token: alice })).status, 202);
    await stack.waitForStatus(alice, slowRerun, TERMINAL);

    const inFuture = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId: p, since: new Date(Date.now() + 3_600_000).toISOString() } });
    assert.deepEqual([inFuture.status, inFuture.body], [200, { count: 0, ids: [] }]);

    // Left: the failed whoami, and the slow rerun just canceled. Reruns already made are not made again.
    const rest = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId: p } });
    assert.equal(rest.status, 202, rest.text);
    assert.equal(rest.body.count, 2);
    const restSources = await db.selectFrom('tasks').select('retry_of').where('id', 'in', rest.body.ids).execute();
    assert.deepEqual(new Set(restSources.map((r) => r.retry_of)), new Set([who, slowRerun]));
    for (const id of rest.body.ids) {
      const t = await stack.api('GET', `/v1/tasks/${id}`, { token: alice });
      if (t.body.tool === 'slow') {
        await stack.waitForStatus(alice, id, ['running']);
        await stack.api('POST', `/v1/tasks/${id}/cancel`, { token: alice });
      }
      await stack.waitForStatus(alice, id, TERMINAL);
    }
    const none = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId: p, status: 'failed' } });
    assert.deepEqual([none.status, none.body], [200, { count: 0, ids: [] }]);
  });

  it('bulk: bad input is a 400 problem', async function () {
    const bad: unknown[] = [
      {},
      { projectId: 'nope' },
      { projectId, status: 'succeeded' },
      { projectId, tool: '' },
      { projectId, since: 'yesterday' },
      { projectId, since: '2025-13-45T00:00:00Z' },
      { projectId, limit: 501 },
      { projectId, limit: 0 },
      { projectId, extra: true },
      [projectId],
    ];
    for (const body of bad) assertProblem(await stack.api('POST', '/v1/tasks/retry', { token: alice, body }), 400, 'ValidationFailed');
    // Dates at the edges of what the format allows are valid filters, not server errors.
    const farFuture = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId, since: '9999-12-31T23:59:59.999Z' } });
    assert.deepEqual([farFuture.status, farFuture.body], [200, { count: 0, ids: [] }]);
    const yearZero = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId, status: 'failed', tool: 'no-such-tool', since: '0000-01-01T00:00:00Z' } });
    assert.deepEqual([yearZero.status, yearZero.body], [200, { count: 0, ids: [] }]);
  });
});

describe('retries count against the submission limits', function () {
  let stack: Stack;
  let alice: string;
  let projectId: string;
  let oracle: TestMcpServer;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    // No worker: the reruns only need to be accepted here.
    stack = await startStack({ worker: false, env: { RATE_LIMIT_SUBMISSIONS: '3' } });
    alice = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'limited' } })).body.id;
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  it('counts each rerun of a bulk call and a single retry as submissions; over the limit, nothing is rerun', async function () {
    const db = stack.world.db;
    const alicesId = (await db.selectFrom('users').select('id').where('login', '=', 'alice').executeTakeFirstOrThrow()).id;
    const failed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const id = randomUUID();
      await db
        .insertInto('tasks')
        .values({ id, project_id: projectId, created_by: alicesId, tool: 'echo', arguments: JSON.stringify({ text: `t${i}` }), workflow_id: `task-${id}`, status: 'failed', attempts: '[]' })
        .execute();
      failed.push(id);
      await sleep(5);
    }
    const two = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId, limit: 2 } });
    assert.equal(two.status, 202, two.text);
    assert.equal(two.body.count, 2);
    const one = await stack.api('POST', `/v1/tasks/${failed[4]}/retry`, { token: alice });
    assert.equal(one.status, 202, one.text);

    const refused = await stack.api('POST', '/v1/tasks/retry', { token: alice, body: { projectId } });
    assertProblem(refused, 429, 'RateLimited');
    assert.ok(refused.headers.get('retry-after'));
    assertProblem(await stack.api('POST', `/v1/tasks/${failed[2]}/retry`, { token: alice }), 429, 'RateLimited');
    const reruns = await db.selectFrom('tasks').select('retry_of').where('retry_of', 'is not', null).execute();
    assert.deepEqual(new Set(reruns.map((r) => r.retry_of)), new Set([failed[0], failed[1], failed[4]]), 'oldest first, and nothing past the limit');
  });
});

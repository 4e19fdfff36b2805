import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

const SPACE_TOKEN = 'hf_space_secret_token_value_1234567890';

describe('heavy tasks, the user\'s Space and consent-gated fallback', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let space: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    space = await startTestMcpServer({ name: 'space', requireBearer: SPACE_TOKEN });
    stack = await startStack({ env: { CONSENT_TIMEOUT: '3s' } });
    token = await stack.token('bob');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'heavy work' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', {
      token,
      body: { name: 'scanner', oracleUrl: oracle.url, canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['slow'] },
    });
    assert.equal(reg.status, 201, reg.text);
    assert.equal(reg.body.tools.find((t: any) => t.name === 'slow').heavy, true);
    const bind = await stack.api('PUT', `/v1/projects/${projectId}/spaces/scanner`, { token, body: { url: space.url, token: SPACE_TOKEN } });
    assert.equal(bind.status, 200, bind.text);
    assert.equal(bind.body.hasToken, true);
    assert.equal(JSON.stringify(bind.body).includes(SPACE_TOKEN), false, 'the token is never returned');
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
    await space?.stop();
  });

  beforeEach(function () {
    space.mode = 'up';
    space.failNextCalls = 0;
    space.resetStats();
    oracle.resetStats();
  });

  const submit = async (body: Record<string, unknown>) => {
    const r = await stack.api('POST', '/v1/tasks', { token, body: { projectId, ...body } });
    assert.equal(r.status, 202, r.text);
    return r.body.id as string;
  };

  it('runs a heavy task on the bound Space and streams its progress over SSE', async function () {
    const id = await submit({ tool: 'slow', arguments: { ms: 600, steps: 3 } });
    const { events } = await readEvents(`${stack.url}/v1/tasks/${id}/events`, { token });
    const progress = events.filter((e) => e.event === 'progress');
    assert.deepEqual(progress.map((e) => e.data.progress), [1, 2, 3]);
    assert.deepEqual(progress.map((e) => e.data.message), ['step 1', 'step 2', 'step 3']);
    assert.equal(events.at(-1)!.data.status, 'succeeded');
    assert.equal(space.callCount('slow'), 1);
    assert.equal(oracle.callCount(), 0);
    const task = (await stack.api('GET', `/v1/tasks/${id}`, { token })).body;
    assert.deepEqual(task.target, { kind: 'space', server: 'scanner' });
    assert.match(task.result.content[0].text, /^done after/);
  });

  it('retries a failing Space call 3 times before giving up on it', async function () {
    space.failNextCalls = 3;
    const id = await submit({ tool: 'slow', arguments: { ms: 10 } });
    const task = await stack.waitForStatus(token, id, ['succeeded', 'failed']);
    assert.equal(task.status, 'succeeded');
    assert.equal(space.rejectedCount(), 3, 'three failed attempts');
    assert.equal(space.callCount('slow'), 1, 'the fourth attempt ran');
    assert.equal(oracle.callCount(), 0);
  });

  it('Space down → 3 retries → awaiting_consent → consent → oracle → succeeded', async function () {
    space.mode = 'down';
    const id = await submit({ tool: 'slow', arguments: { ms: 10 } });
    const waiting = await stack.waitForStatus(token, id, ['awaiting_consent']);
    assert.equal(space.rejectedCount(), 4, 'one try and three retries');
    assert.equal(waiting.attempts[0].kind, 'space');
    assert.equal(waiting.attempts[0].outcome, 'unhealthy');
    assert.equal(waiting.attempts[0].tries, 4);
    assert.equal(oracle.callCount(), 0, 'nothing runs on the oracle before consent');
    const state = await stack.world.client.workflow.getHandle(`task-${id}`).query('state');
    assert.equal((state as any).status, 'awaiting_consent');
    assert.equal((state as any).consent, 'pending');

    const consent = await stack.api('POST', `/v1/tasks/${id}/consent`, { token, body: { grant: true } });
    assert.equal(consent.status, 200, consent.text);
    assert.equal(consent.body.consent, 'granted');
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.target, { kind: 'oracle', server: 'scanner' });
    assert.equal(oracle.callCount('slow'), 1);
    const events = await stack.world.events.list(id, 0);
    assert.ok(events.some((e) => e.type === 'status' && e.data.status === 'awaiting_consent' && typeof e.data.consentDeadline === 'string'));
  });

  it('Space down and consent denied → failed with a readable reason', async function () {
    space.mode = 'down';
    const id = await submit({ tool: 'slow', arguments: { ms: 10 } });
    await stack.waitForStatus(token, id, ['awaiting_consent']);
    const deny = await stack.api('POST', `/v1/tasks/${id}/consent`, { token, body: { grant: false } });
    assert.equal(deny.status, 200, deny.text);
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed']);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'ConsentDenied');
    assert.match(done.error.message, /declined/);
    assert.equal(oracle.callCount(), 0);
  });

  it('Space down and no decision before the deadline → failed', async function () {
    space.mode = 'down';
    const id = await submit({ tool: 'slow', arguments: { ms: 10 } });
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed'], 30_000);
    assert.equal(done.status, 'failed');
    assert.equal(done.error.code, 'ConsentExpired');
    assert.equal(done.attempts.at(-1).outcome, 'consent_expired');
    assert.equal(oracle.callCount(), 0);
  });

  it('consentToOracle at submission skips the wait', async function () {
    space.mode = 'down';
    const id = await submit({ tool: 'slow', arguments: { ms: 10 }, consentToOracle: true });
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.target, { kind: 'oracle', server: 'scanner' });
    const statuses = (await stack.world.events.list(id, 0)).filter((e) => e.type === 'status').map((e) => e.data.status);
    assert.equal(statuses.includes('awaiting_consent'), false);
  });

  it('the consent signal from an operator works like the API call', async function () {
    space.mode = 'down';
    const id = await submit({ tool: 'slow', arguments: { ms: 10 } });
    await stack.waitForStatus(token, id, ['awaiting_consent']);
    await stack.world.client.workflow.getHandle(`task-${id}`).signal('consent', { grant: true, by: 'operator' });
    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded');
  });

  it('sends the Space token only to the Space, and never logs it', async function () {
    const id = await submit({ tool: 'echo', arguments: { text: 'x' }, heavy: true });
    await stack.waitForStatus(token, id, ['succeeded']);
    assert.ok(space.seenAuthorization().every((h) => h === `Bearer ${SPACE_TOKEN}`));
    assert.ok(space.seenAuthorization().length > 0);
    assert.equal(oracle.seenAuthorization().length, 0);
    assert.equal(stack.logLines.some((l) => l.includes(SPACE_TOKEN)), false);
    const listed = await stack.api('GET', `/v1/projects/${projectId}/spaces`, { token });
    assert.equal(listed.text.includes(SPACE_TOKEN), false);
    const row = await stack.world.db.selectFrom('space_bindings').select('token_sealed').executeTakeFirstOrThrow();
    assert.notEqual(row.token_sealed, SPACE_TOKEN);
  });

  it('never uses a token copied from another row: the API names the problem and the task falls back to the oracle', async function () {
    const other = (await stack.api('POST', '/v1/projects', { token, body: { name: 'copied token' } })).body.id as string;
    const bind = await stack.api('PUT', `/v1/projects/${other}/spaces/scanner`, { token, body: { url: space.url, token: 'another-token' } });
    assert.equal(bind.status, 200, bind.text);
    const mine = await stack.world.db.selectFrom('space_bindings').select('token_sealed').where('project_id', '=', projectId).executeTakeFirstOrThrow();
    await stack.world.db.updateTable('space_bindings').set({ token_sealed: mine.token_sealed }).where('project_id', '=', other).execute();

    const health = await stack.api('GET', `/v1/mcps/scanner/health?projectId=${other}`, { token });
    assert.equal(health.status, 200, health.text);
    assert.equal(health.body.space.code, 'SpaceTokenUnreadable');
    assert.equal(health.text.includes(SPACE_TOKEN), false);

    const r = await stack.api('POST', '/v1/tasks', { token, body: { projectId: other, tool: 'slow', arguments: { ms: 10 }, consentToOracle: true } });
    assert.equal(r.status, 202, r.text);
    const done = await stack.waitForStatus(token, r.body.id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded');
    assert.deepEqual(done.target, { kind: 'oracle', server: 'scanner' });
    assert.equal(done.attempts[0].kind, 'space');
    assert.match(done.attempts[0].reason, /cannot be read/);
    assert.equal(space.seenAuthorization().length, 0, 'the Space was not called with any token');
  });

  it('refuses to bind a token to a plain-http URL off this machine, storing nothing', async function () {
    const before = await stack.world.db.selectFrom('space_bindings').selectAll().where('project_id', '=', projectId).executeTakeFirstOrThrow();
    const r = await stack.api('PUT', `/v1/projects/${projectId}/spaces/scanner`, { token, body: { url: 'http://space.example/mcp', token: 'tok' } });
    assert.equal(r.status, 422, r.text);
    assert.equal(r.body.code, 'InsecureTokenTransport');
    const after = await stack.world.db.selectFrom('space_bindings').selectAll().where('project_id', '=', projectId).executeTakeFirstOrThrow();
    assert.deepEqual(after, before);
  });

  it('cancels a running task, aborting the call on the Space', async function () {
    const id = await submit({ tool: 'slow', arguments: { ms: 20_000, steps: 20 } });
    await stack.waitForStatus(token, id, ['running']);
    for (let i = 0; i < 50 && space.inFlight() === 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(space.inFlight(), 1);
    const cancel = await stack.api('POST', `/v1/tasks/${id}/cancel`, { token });
    assert.equal(cancel.status, 202, cancel.text);
    const done = await stack.waitForStatus(token, id, ['canceled', 'succeeded', 'failed'], 15_000);
    assert.equal(done.status, 'canceled');
    const handle = stack.world.client.workflow.getHandle(`task-${id}`);
    await handle.result().catch(() => undefined);
    assert.equal((await handle.describe()).status.name, 'CANCELLED', 'a canceled task stays Canceled, not Failed');
    for (let i = 0; i < 50 && space.inFlight() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    assert.equal(space.inFlight(), 0, 'the in-flight call was aborted');
  });
});

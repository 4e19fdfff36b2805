import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { largeText, startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { until } from '../support/until.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('results, idempotency, event replay and project isolation', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let alice: string;
  let mallory: string;
  let projectId: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack();
    alice = await stack.token('alice');
    mallory = await stack.token('mallory');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'results' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  const submit = async (body: Record<string, unknown>, headers?: Record<string, string>) =>
    stack.api('POST', '/v1/tasks', { token: alice, body: { projectId, ...body }, headers });

  it('stores a result over 1 MiB behind a pointer and streams back the exact bytes', async function () {
    const bytes = 1024 * 1024 + 4096;
    const r = await submit({ tool: 'large', arguments: { bytes } });
    const task = await stack.waitForStatus(alice, r.body.id, ['succeeded', 'failed']);
    assert.equal(task.status, 'succeeded', JSON.stringify(task));
    const expected = Buffer.from(JSON.stringify({ content: [{ type: 'text', text: largeText(bytes) }] }));
    assert.equal(task.result.type, 'pointer');
    assert.equal(task.result.location, `file-store:tasks/${r.body.id}/result.json`);
    assert.equal(task.result.size, expected.length);
    assert.equal(task.result.sha256, createHash('sha256').update(expected).digest('hex'));
    assert.equal(task.result.mediaType, 'application/json');

    // Neither the task nor its events say where the server keeps its files.
    const resultsDir = stack.config.results.store.slice('file://'.length);
    assert.equal(JSON.stringify(task).includes(resultsDir), false);
    const events = await stack.world.events.list(r.body.id, 0);
    assert.ok(events.some((e) => e.type === 'result'));
    assert.equal(JSON.stringify(events).includes(resultsDir), false);

    const res = await fetch(`${stack.url}/v1/tasks/${r.body.id}/result`, { headers: { Authorization: `Bearer ${alice}` } });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.ok(Buffer.from(await res.arrayBuffer()).equals(expected), 'the exact bytes come back');

    const row = await stack.world.db.selectFrom('results').selectAll().where('task_id', '=', r.body.id).executeTakeFirstOrThrow();
    assert.equal(row.content, null);
    assert.equal(Number(row.size), expected.length);
  });

  it('keeps a result under 1 MiB inline and returns it from /result too', async function () {
    const r = await submit({ tool: 'large', arguments: { bytes: 1000 } });
    const task = await stack.waitForStatus(alice, r.body.id, ['succeeded']);
    assert.equal(task.result.content[0].text, largeText(1000));
    const res = await stack.api('GET', `/v1/tasks/${r.body.id}/result`, { token: alice });
    assert.equal(res.status, 200);
    assert.equal(res.body.content[0].text, largeText(1000));
    // Without Redis (TEST_IN_PROCESS_REDIS) the cache is in memory; its contract is tested in caches-contract.
    if (stack.world.redis) {
      const cached = await stack.world.redis.hgetall(`${stack.config.redisPrefix}result:${r.body.id}`);
      assert.ok(Object.keys(cached).length > 0, 'the inline result is cached in Redis');
    }
  });

  it('one Idempotency-Key → one task and one workflow; another body with it → 409', async function () {
    const key = `key-${Date.now()}`;
    const body = { tool: 'echo', arguments: { text: 'once' } };
    const [a, b] = await Promise.all([submit(body, { 'Idempotency-Key': key }), submit(body, { 'Idempotency-Key': key })]);
    assert.equal(a.status, 202);
    assert.equal(b.status, 202);
    assert.equal(a.body.id, b.body.id);
    await stack.waitForStatus(alice, a.body.id, ['succeeded']);
    const again = await submit(body, { 'Idempotency-Key': key });
    assert.equal(again.body.id, a.body.id);
    assert.equal(again.headers.get('idempotent-replayed'), 'true');

    const rows = await stack.world.db.selectFrom('tasks').select('id').where('idempotency_key', '=', key).execute();
    assert.equal(rows.length, 1);
    const runs = [];
    for await (const w of stack.world.client.workflow.list({ query: `WorkflowId = 'task-${a.body.id}'` })) runs.push(w);
    assert.equal(runs.length, 1, 'exactly one workflow execution');
    assert.equal(oracle.callCount('echo') >= 1, true);

    const conflict = await submit({ tool: 'echo', arguments: { text: 'other' } }, { 'Idempotency-Key': key });
    assert.equal(conflict.status, 409);
    assert.equal(conflict.body.code, 'IdempotencyKeyReused');
  });

  it('resumes SSE from Last-Event-ID with no gap and no duplicate', async function () {
    const r = await submit({ tool: 'slow', arguments: { ms: 1500, steps: 6 } });
    const id = r.body.id;
    const first = await readEvents(`${stack.url}/v1/tasks/${id}/events`, { token: alice, until: (e) => e.event === 'progress' && e.data.progress === 2 });
    const lastId = first.events.at(-1)!.id!;
    const second = await readEvents(`${stack.url}/v1/tasks/${id}/events`, { token: alice, lastEventId: lastId });
    assert.equal(second.closedByServer, true);
    assert.equal(second.events[0]!.event, 'snapshot');
    assert.equal(second.events[0]!.id, undefined, 'the snapshot does not move Last-Event-ID');
    const seqs = [...first.events, ...second.events].filter((e) => e.id !== undefined).map((e) => Number(e.id));
    const all = await stack.world.events.list(id, 0);
    assert.deepEqual(seqs, all.map((e) => e.seq), 'together the two streams hold every logged event exactly once, in order');
    assert.equal(second.events.at(-1)!.data.status, 'succeeded');
  });

  it('a user cannot see or act on another project\'s tasks or bindings', async function () {
    const r = await submit({ tool: 'echo', arguments: { text: 'private' } });
    const id = r.body.id;
    await stack.waitForStatus(alice, id, ['succeeded']);
    for (const [method, path, body] of [
      ['GET', `/v1/tasks/${id}`],
      ['GET', `/v1/tasks/${id}/result`],
      ['GET', `/v1/tasks/${id}/events`],
      ['POST', `/v1/tasks/${id}/cancel`],
      ['POST', `/v1/tasks/${id}/consent`, { grant: true }],
      ['GET', `/v1/projects/${projectId}`],
      ['GET', `/v1/projects/${projectId}/spaces`],
      ['PUT', `/v1/projects/${projectId}/spaces/tools`, { url: 'http://127.0.0.1:9/mcp' }],
    ] as const) {
      const res = await stack.api(method, path, { token: mallory, body });
      assert.equal(res.status, 404, `${method} ${path} → ${res.status} ${res.text}`);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
    }
    const submitted = await stack.api('POST', '/v1/tasks', { token: mallory, body: { projectId, tool: 'echo', arguments: { text: 'x' } } });
    assert.equal(submitted.status, 404);
    assert.equal(submitted.body.code, 'ProjectNotFound');
    const list = await stack.api('GET', '/v1/tasks', { token: mallory });
    assert.equal(list.status, 200);
    assert.deepEqual(list.body.items, []);
    const own = await stack.api('GET', `/v1/tasks?projectId=${projectId}&limit=2`, { token: alice });
    assert.equal(own.body.items.length, 2);
    assert.ok(own.body.nextCursor, 'more pages');
    const next = await stack.api('GET', `/v1/tasks?projectId=${projectId}&limit=2&cursor=${own.body.nextCursor}`, { token: alice });
    assert.equal(next.status, 200);
    assert.equal(new Set([...own.body.items, ...next.body.items].map((t: any) => t.id)).size, own.body.items.length + next.body.items.length);
  });

  it('an owner shares a project with a member, who then sees its tasks, and can take it back', async function () {
    const r = await submit({ tool: 'echo', arguments: { text: 'shared' } });
    await stack.waitForStatus(alice, r.body.id, ['succeeded']);
    assert.equal((await stack.api('GET', `/v1/tasks/${r.body.id}`, { token: mallory })).status, 404);

    const added = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'mallory' } });
    assert.equal(added.status, 201, added.text);
    assert.deepEqual(added.body, { login: 'mallory', role: 'member' });
    const seen = await stack.api('GET', `/v1/tasks/${r.body.id}`, { token: mallory });
    assert.equal(seen.status, 200);
    assert.equal(seen.body.result.content[0].text, 'shared');
    const members = await stack.api('GET', `/v1/projects/${projectId}/members`, { token: mallory });
    assert.deepEqual(members.body.items, [{ login: 'alice', role: 'owner' }, { login: 'mallory', role: 'member' }]);

    const notOwner = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: mallory, body: { login: 'mallory', role: 'owner' } });
    assert.equal(notOwner.status, 403);
    assert.equal(notOwner.body.code, 'Forbidden');
    const unknown = await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'nobody' } });
    assert.equal(unknown.status, 422);
    assert.equal(unknown.body.code, 'UnknownUser');
    const lastOwner = await stack.api('DELETE', `/v1/projects/${projectId}/members/alice`, { token: alice });
    assert.equal(lastOwner.status, 409);
    assert.equal(lastOwner.body.code, 'LastOwner');

    assert.equal((await stack.api('DELETE', `/v1/projects/${projectId}/members/mallory`, { token: alice })).status, 204);
    assert.equal((await stack.api('GET', `/v1/tasks/${r.body.id}`, { token: mallory })).status, 404);
  });

  it('exposes metrics and readiness', async function () {
    const ready = await stack.api('GET', '/readyz');
    assert.equal(ready.status, 200);
    assert.deepEqual(ready.body.checks, { postgres: 'up', redis: stack.world.redis ? 'up' : 'in process', temporal: 'up' });
    const metrics = await stack.api('GET', '/metrics');
    assert.match(metrics.text, /orchestrator_tasks_total\{outcome="succeeded"\} \d+/);
    assert.match(metrics.text, /orchestrator_dispatch_duration_seconds_count\{target_kind="oracle",outcome="succeeded"\} \d+/);
    assert.match(metrics.text, /orchestrator_http_request_duration_seconds_count\{method="POST",route="\/v1\/tasks",status="202"\}/);
    assert.match(metrics.text, /orchestrator_slot_attempts_total\{outcome="acquired"\} [1-9]/);
  });

  it('counts running tasks and open event streams while they last, and not after', async function () {
    const metric = async (line: RegExp) => Number((await stack.api('GET', '/metrics')).text.match(line)?.[1] ?? NaN);
    const running = /orchestrator_tasks_active\{status="running"\} (\d+)/;
    const streams = /orchestrator_sse_streams_open (\d+)/;
    const r = await submit({ tool: 'slow', arguments: { ms: 3000 } });
    await stack.waitForStatus(alice, r.body.id, ['running']);
    assert.equal(await metric(running), 1);
    const controller = new AbortController();
    const res = await fetch(`${stack.url}/v1/tasks/${r.body.id}/events`, { headers: { Authorization: `Bearer ${alice}` }, signal: controller.signal });
    assert.equal(res.status, 200);
    assert.equal(await metric(streams), 1);
    controller.abort();
    await until('the stream to be released', async () => (await metric(streams)) === 0, 5000);
    await stack.waitForStatus(alice, r.body.id, ['succeeded']);
    assert.equal(await metric(running), 0);
  });
});

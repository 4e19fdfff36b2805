import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { insertTask } from '../support/test-db.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startPrivateRedis } from '../support/private-redis.ts';
import { readEvents, type SseEvent } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Redis holds only caches and pub/sub: with it gone, work goes on from Postgres. Each test stops this file's own
// Redis for real and starts it again afterwards.

const isTerminalStatus = (e: SseEvent) => e.event === 'status' && ['succeeded', 'failed', 'canceled'].includes(e.data.status);

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

describe('Redis outage', function () {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;

  before(async function () {
    redis = await startPrivateRedis();
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ env: { REDIS_URL: redis.url } });
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'outage' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
  });

  afterEach(async function () {
    if (this.currentTest?.state === 'failed') process.stderr.write(`${stack.logLines.slice(-60).join('\n')}\n`);
    await redis.start().catch(() => undefined);
  });

  after(async function () {
    await redis.start().catch(() => undefined);
    await stack?.stop();
    await oracle?.stop();
    await redis?.destroy();
  });

  const failures = async (op: string) => {
    const metric = await stack.world.metricsRegistry.getSingleMetric('orchestrator_best_effort_failures_total')!.get();
    return metric.values.find((v) => v.labels.op === op)?.value ?? 0;
  };

  it('stores, publishes and serves results, and logs events, from Postgres alone', async function () {
    await redis.stop();
    const { results, events } = stack.world;
    const taskId = await insertTask(stack.world.db);
    const started = Date.now();
    const body = Buffer.from(JSON.stringify({ content: [{ type: 'text', text: 'kept' }] }));
    const ref = await results.save(taskId, body, 'application/json');
    assert.equal(ref.storage, 'inline');
    const published = await results.publish(taskId);
    assert.equal(published?.storage, 'inline');
    const view = await results.describe(taskId);
    assert.deepEqual(view?.storage === 'inline' && view.value, { content: [{ type: 'text', text: 'kept' }] });
    const opened = await results.open(taskId);
    assert.ok(Buffer.isBuffer(opened?.body) && opened.body.equals(body));
    const appended = await events.appendAll(taskId, [{ type: 'progress', data: { n: 1 } }, { type: 'progress', data: { n: 2 } }]);
    assert.deepEqual(appended.map((e) => e.seq), [1, 2]);
    assert.ok(Date.now() - started < 15_000, `bounded waits (${Date.now() - started} ms)`);
    assert.ok((await failures('result_cache_write')) >= 1);
    assert.ok((await failures('result_cache_invalidate')) >= 1);
    assert.ok((await failures('result_cache_read')) >= 1);
    assert.ok((await failures('event_publish')) >= 2);
    assert.ok(stack.logLines.some((l) => l.includes('result cache step skipped')));
  });

  it("a task's result is published and its end recorded while Redis is down (what storeResult and recordStatus do)", async function () {
    const { results, tasks, db } = stack.world;
    const taskId = await insertTask(db);
    const body = Buffer.from(JSON.stringify({ content: [{ type: 'text', text: 'done' }] }));
    await results.save(taskId, body, 'application/json');
    await redis.stop();
    await tasks.recordState(taskId, { status: 'running', attempts: [], consent: 'not_needed', target: { kind: 'oracle', server: 'tools' } });
    const ref = await results.publish(taskId);
    assert.ok(ref);
    await tasks.recordSuccess(taskId, ref, { status: 'succeeded', attempts: [], consent: 'not_needed', target: { kind: 'oracle', server: 'tools' } });
    const row = await db.selectFrom('tasks').selectAll().where('id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(row.status, 'succeeded');
    const logged = await stack.world.events.list(taskId, 0);
    assert.deepEqual(logged.map((e) => [e.type, e.data.status]), [['status', 'running'], ['result', undefined], ['status', 'succeeded']]);
    const view = await results.describe(taskId);
    assert.deepEqual(view?.storage === 'inline' && view.value, { content: [{ type: 'text', text: 'done' }] });
  });

  it('SSE followers, old and new, catch up from Postgres across an outage, and the task succeeds', async function () {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 3000, steps: 3 } } });
    assert.equal(submit.status, 202, submit.text);
    const id: string = submit.body.id;
    const eventsUrl = `${stack.url}/v1/tasks/${id}/events`;
    const early = readEvents(eventsUrl, { token, until: isTerminalStatus, timeoutMs: 90_000 });

    await until('the slow call to be running', () => oracle.inFlight() === 1, 30_000);
    const publishFailuresBefore = await failures('event_publish');
    await redis.stop();
    // A follower that arrives during the outage: it cannot subscribe, and still sees everything.
    const late = readEvents(eventsUrl, { token, until: isTerminalStatus, timeoutMs: 90_000 });
    // Progress events are logged while Redis is away. (Concurrency slots live in Redis: the workflow frees its slot
    // once Redis is back, so the outage ends before the task can.)
    await until('the slow call to end', () => oracle.inFlight() === 0 && oracle.callCount('slow') === 1, 30_000);
    await sleep(2000);
    assert.ok((await failures('event_publish')) > publishFailuresBefore, 'publishes failed during the outage');
    await redis.start();

    const done = await stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled'], 90_000);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.match(done.result.content[0].text, /^done after \d+ ms$/);
    const result = await stack.api('GET', `/v1/tasks/${id}/result`, { token });
    assert.equal(result.status, 200);
    assert.deepEqual(result.body.content, done.result.content);

    const logged = await stack.world.events.list(id, 0);
    for (const follower of [await early, await late]) {
      assert.equal(follower.status, 200);
      const seqs = follower.events.filter((e) => e.id !== undefined).map((e) => Number(e.id));
      assert.deepEqual(seqs, logged.map((e) => e.seq), 'every logged event, once, in order');
      assert.ok(isTerminalStatus(follower.events.at(-1)!));
    }
  });
});

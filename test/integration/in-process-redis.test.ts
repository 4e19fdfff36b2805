import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { REDIS_TEST_URL } from '../support/test-db.ts';

// `npm start` with only Node and Postgres: no REDIS_URL, so caches, slots, limits and the live event feed are kept in
// the process. Real Postgres, a real Temporal dev server and a real MCP server, as everywhere else.
describe('one process without Redis (REDIS_URL unset)', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let token: string;
  let projectId: string;
  let observer: Redis;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ inProcessRedis: true, env: { MAX_CONCURRENT_JOBS: '2', MAX_SSE_STREAMS_PER_USER: '3' } });
    observer = new Redis(REDIS_TEST_URL);
    token = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'laptop' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
    await observer?.quit();
  });

  it('builds a world with no Redis connection and says so in /readyz', async function () {
    assert.equal(stack.config.redisUrl, undefined);
    assert.equal(stack.world.storesMode, 'in process');
    assert.equal(stack.world.redis, undefined);
    const ready = await stack.api('GET', '/readyz');
    assert.equal(ready.status, 200, ready.text);
    assert.deepEqual(ready.body, { status: 'ready', checks: { postgres: 'up', redis: 'in process', temporal: 'up' } });
  });

  it('runs a task end to end and streams its events live over SSE, without touching Redis', async function () {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'no redis' } } });
    assert.equal(submit.status, 202, submit.text);
    const id = submit.body.id;

    const { events, closedByServer } = await readEvents(`${stack.url}/v1/tasks/${id}/events`, { token, timeoutMs: 30_000 });
    assert.equal(closedByServer, true, 'the stream closes after the terminal event');
    assert.equal(events[0]!.event, 'snapshot');
    const logged = events.slice(1);
    assert.deepEqual(logged.map((e) => Number(e.id)), logged.map((_, i) => i + 1), 'ids are the seqs 1..n, nothing skipped or repeated');
    assert.deepEqual(logged.filter((e) => e.event === 'status').map((e) => e.data.status), ['queued', 'routing', 'running', 'succeeded']);
    assert.equal(logged.find((e) => e.event === 'result')?.data.storage, 'inline');

    const task = await stack.api('GET', `/v1/tasks/${id}`, { token });
    assert.equal(task.body.status, 'succeeded');
    assert.deepEqual(task.body.result.content, [{ type: 'text', text: 'no redis' }]);
    // Read twice: the second comes from the in-process cache and must be the same bytes.
    const first = await stack.api('GET', `/v1/tasks/${id}/result`, { token });
    const second = await stack.api('GET', `/v1/tasks/${id}/result`, { token });
    assert.equal(first.status, 200);
    assert.equal(second.text, first.text);
    assert.deepEqual(JSON.parse(first.text), { content: [{ type: 'text', text: 'no redis' }] });
    assert.equal(oracle.callCount('echo'), 1);
    assert.equal(await stack.world.slots.inFlight(), 0, 'the dispatch slot was released');

    const leaked = await observer.keys(`${stack.config.redisPrefix}*`);
    assert.deepEqual(leaked, [], 'nothing was written to the Redis on this machine');
  });

  it('delivers live events to a stream opened before the task runs (pub/sub in process)', async function () {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 1500 } } });
    assert.equal(submit.status, 202, submit.text);
    // Opened at once, so most events arrive live rather than from the log.
    const { events, closedByServer } = await readEvents(`${stack.url}/v1/tasks/${submit.body.id}/events`, { token, timeoutMs: 30_000 });
    assert.equal(closedByServer, true);
    const statuses = events.filter((e) => e.event === 'status').map((e) => e.data.status);
    assert.equal(statuses.at(-1), 'succeeded');
    assert.ok(events.some((e) => e.event === 'progress'), 'progress arrived while the tool ran');
    const ids = events.slice(1).map((e) => Number(e.id));
    assert.deepEqual(ids, [...ids].sort((a, b) => a - b), 'in seq order');
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
  });

  it('limits event streams per user in process: a fourth open stream is a 429, a closed one frees its slot', async function () {
    const submit = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 3000 } } });
    const url = `${stack.url}/v1/tasks/${submit.body.id}/events`;
    const open = () => {
      const abort = new AbortController();
      return { abort, res: fetch(url, { headers: { Authorization: `Bearer ${token}` }, signal: abort.signal }) };
    };
    const streams = [open(), open(), open()];
    try {
      for (const s of streams) assert.equal((await s.res).status, 200);
      const fourth = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
      assert.equal(fourth.status, 429);
      assert.equal((await fourth.json()).code, 'TooManyStreams');
      streams[0]!.abort.abort();
      let again: Response | undefined;
      for (let i = 0; i < 50; i++) {
        again = await fetch(url, { headers: { Authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(200) }).catch(() => undefined);
        if (again?.status === 200) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(again?.status, 200, 'the closed stream gave its slot back');
    } finally {
      for (const s of streams) s.abort.abort();
    }
    await stack.waitForStatus(token, submit.body.id, ['succeeded'], 30_000);
  });

  it('holds the global concurrency cap in process', async function () {
    const submits = await Promise.all(Array.from({ length: 5 }, () => stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'slow', arguments: { ms: 600 } } })));
    for (const s of submits) assert.equal(s.status, 202, s.text);
    const finals = await Promise.all(submits.map((s) => stack.waitForStatus(token, s.body.id, ['succeeded', 'failed', 'canceled'], 90_000)));
    assert.deepEqual(finals.map((t) => t.status), Array(5).fill('succeeded'));
    assert.ok(oracle.maxInFlight() <= 2, `at most 2 calls at once (saw ${oracle.maxInFlight()})`);
    assert.equal(oracle.maxInFlight(), 2, 'the cap, not serial execution, is the limit');
    assert.equal(await stack.world.slots.inFlight(), 0);
  });
});

import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import type { ApiResponse, Stack } from '../support/stack.ts';
import { startStack } from '../support/stack.ts';

/** A 429 as every limit answers it: the code, Retry-After and both draft RateLimit fields naming the limit. */
function assertRefused(r: ApiResponse, code: string, limit: string, quota: number): void {
  assert.equal(r.status, 429, r.text);
  assert.match(r.headers.get('content-type') ?? '', /^application\/problem\+json/);
  assert.equal(r.body.code, code);
  assert.equal(r.body.limit, limit);
  assert.equal(r.body.quota, quota);
  const retryAfter = Number(r.headers.get('retry-after'));
  assert.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${r.headers.get('retry-after')}`);
  assert.equal(r.body.retryAfter, retryAfter);
  assert.match(r.headers.get('ratelimit-policy') ?? '', new RegExp(`^"${limit}";q=${quota}(;w=\\d+|;qu="concurrent-requests")$`));
  assert.equal(r.headers.get('ratelimit'), `"${limit}";r=0;t=${retryAfter}`);
}

async function rejections(stack: Stack, limit: string, headers: Record<string, string> = {}): Promise<number> {
  const r = await stack.api('GET', '/metrics', { headers });
  assert.equal(r.status, 200, r.text);
  const m = new RegExp(`^orchestrator_rate_limit_rejections_total\\{limit="${limit}"\\} (\\d+)$`, 'm').exec(r.text);
  assert.ok(m, `no rejection counter for ${limit}`);
  return Number(m[1]);
}

/** Checks what the limits wrote to Redis; in process (the embedded test pass) there is no Redis to look into. */
async function checkRedisKeys(stack: Stack, pattern: string, check: (keys: string[]) => void): Promise<void> {
  if (!stack.world.redis) return;
  check(await stack.world.redis.keys(`${stack.config.redisPrefix}${pattern}`));
}

/** Opens an event stream and keeps it open until `close()`; resolves once the status is known. */
async function holdStream(stack: Stack, token: string, taskId: string) {
  const abort = new AbortController();
  const res = await fetch(`${stack.url}/v1/tasks/${taskId}/events`, { headers: { Authorization: `Bearer ${token}` }, signal: abort.signal });
  const text = res.ok ? '' : await res.text();
  return {
    status: res.status,
    headers: res.headers,
    body: text ? JSON.parse(text) : undefined,
    text,
    close: () => abort.abort(),
  };
}

describe('limits: requests per user', function () {
  let stack: Stack;

  before(async function () {
    stack = await startStack({ worker: false, env: { RATE_LIMIT_REQUESTS: '5' } });
  });
  after(async function () {
    await stack?.stop();
  });

  it('refuses the sixth request of a user in a window, and only that user', async function () {
    const alice = await stack.token('alice');
    const bob = await stack.token('bob');
    for (let i = 1; i <= 5; i++) {
      const r = await stack.api('GET', '/v1/projects', { token: alice });
      assert.equal(r.status, 200, r.text);
      assert.match(r.headers.get('ratelimit-policy') ?? '', /^"requests";q=5;w=60$/);
      assert.match(r.headers.get('ratelimit') ?? '', new RegExp(`^"requests";r=${5 - i};t=\\d+$`));
    }
    const before = await rejections(stack, 'requests');
    const refused = await stack.api('GET', '/v1/projects', { token: alice });
    assertRefused(refused, 'RateLimited', 'requests', 5);
    assert.equal(await rejections(stack, 'requests'), before + 1);

    const other = await stack.api('GET', '/v1/projects', { token: bob });
    assert.equal(other.status, 200, 'another user has a budget of their own');

    await checkRedisKeys(stack, 'limits:requests:*', (keys) => assert.equal(keys.length, 2, `one counter per user under the stack's prefix: ${keys.join(', ')}`));
  });
});

describe('limits: submissions per user', function () {
  let stack: Stack;
  let oracle: TestMcpServer;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ worker: false, env: { RATE_LIMIT_SUBMISSIONS: '2' } });
  });
  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  it('refuses the third submission in a window with RateLimited', async function () {
    const token = await stack.token('alice');
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'p' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
    const body = { projectId, tool: 'echo', arguments: { text: 'x' } };
    for (let i = 0; i < 2; i++) assert.equal((await stack.api('POST', '/v1/tasks', { token, body })).status, 202);
    const refused = await stack.api('POST', '/v1/tasks', { token, body });
    assertRefused(refused, 'RateLimited', 'submissions', 2);
    assert.equal(await rejections(stack, 'submissions'), 1);
    const rows = await stack.world.db.selectFrom('tasks').select('id').where('project_id', '=', projectId).execute();
    assert.equal(rows.length, 2, 'the refused submission created no task');
    assert.equal((await stack.api('GET', '/v1/projects', { token })).status, 200, 'other routes still answer');
  });
});

describe('limits: active tasks per project and event streams per user', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let alice: string;
  let projectId: string;
  const started: string[] = [];

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({ env: { MAX_ACTIVE_TASKS_PER_PROJECT: '2', MAX_SSE_STREAMS_PER_USER: '2' } });
    alice = await stack.token('alice');
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'p' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
  });
  after(async function () {
    // Tasks still running would hold the worker's shutdown until their tool call ends.
    for (const id of started) await stack?.api('POST', `/v1/tasks/${id}/cancel`, { token: alice });
    for (const id of started) await stack?.waitForStatus(alice, id, ['canceled', 'succeeded', 'failed']).catch(() => undefined);
    await stack?.stop();
    await oracle?.stop();
  });

  const slowTask = { tool: 'slow', arguments: { ms: 60_000 } };

  it('refuses a third active task, answers a replay, and accepts again once one ends', async function () {
    const submit = (key?: string) => stack.api('POST', '/v1/tasks', { token: alice, body: { projectId, ...slowTask }, headers: key ? { 'Idempotency-Key': key } : {} });
    const first = await submit('first');
    const second = await submit();
    assert.equal(first.status, 202, first.text);
    assert.equal(second.status, 202, second.text);
    started.push(first.body.id, second.body.id);
    await stack.waitForStatus(alice, first.body.id, ['running']);

    const third = await submit();
    assertRefused(third, 'TooManyActiveTasks', 'active_tasks', 2);
    assert.equal(await rejections(stack, 'active_tasks'), 1);

    const replay = await submit('first');
    assert.equal(replay.status, 202, `a replay is answered, not refused: ${replay.text}`);
    assert.equal(replay.headers.get('idempotent-replayed'), 'true');
    assert.equal(replay.body.id, first.body.id);
    const count = await stack.world.db.selectFrom('tasks').select('id').where('project_id', '=', projectId).execute();
    assert.equal(count.length, 2, 'nothing was created by the refusal or the replay');

    assert.equal((await stack.api('POST', `/v1/tasks/${first.body.id}/cancel`, { token: alice })).status, 202);
    await stack.waitForStatus(alice, first.body.id, ['canceled']);
    const fourth = await submit();
    assert.equal(fourth.status, 202, `a slot freed by the cancel: ${fourth.text}`);
    started.push(fourth.body.id);
  });

  it('refuses a third stream, keeps the slots of live streams past their lease, frees one on close', async function () {
    const taskId = started[1]!;
    const a = await holdStream(stack, alice, taskId);
    const b = await holdStream(stack, alice, taskId);
    try {
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      // Longer than the lease (5 s): only the heartbeat renewals keep both slots held.
      await sleep(6000);
      const c = await holdStream(stack, alice, taskId);
      c.close();
      assertRefused(c, 'TooManyStreams', 'streams', 2);
      assert.equal(await rejections(stack, 'streams'), 1);

      a.close();
      let d: Awaited<ReturnType<typeof holdStream>> | undefined;
      for (let i = 0; i < 50 && d?.status !== 200; i++) {
        d?.close();
        await sleep(100);
        d = await holdStream(stack, alice, taskId);
      }
      d!.close();
      assert.equal(d!.status, 200, `a closed stream frees its slot: ${d!.text}`);
    } finally {
      a.close();
      b.close();
    }
  });

  it('frees the slots of streams whose API died once their lease ends', async function () {
    const user = await stack.world.db.selectFrom('users').select('id').where('login', '=', 'alice').executeTakeFirstOrThrow();
    // Open streams through the limits directly and never renew them: what an API that crashed leaves behind.
    await sleep(300); // the previous test's streams release on close
    const orphans = [await stack.world.limits.openStream(user.id), await stack.world.limits.openStream(user.id)];
    assert.deepEqual(orphans.map((o) => o.decision.allowed), [true, true]);
    const refused = await holdStream(stack, alice, started[1]!);
    refused.close();
    assert.equal(refused.status, 429);
    await checkRedisKeys(stack, 'limits:streams:*', (keys) => assert.equal(keys.length, 1));

    await sleep(5500);
    const after = await holdStream(stack, alice, started[1]!);
    after.close();
    assert.equal(after.status, 200, after.text);
  });
});

describe('limits: unauthenticated requests per address', function () {
  let stack: Stack;

  before(async function () {
    stack = await startStack({ worker: false, env: { RATE_LIMIT_ANONYMOUS: '3', TRUST_PROXY: 'true' } });
  });
  after(async function () {
    await stack?.stop();
  });

  // Addresses are told apart by X-Forwarded-For (TRUST_PROXY: one proxy hop is trusted); the traffic stays on 127.0.0.1.
  const from = (ip: string) => ({ 'X-Forwarded-For': ip });

  it('refuses /healthz after three requests from one address; another address is unaffected', async function () {
    for (let i = 0; i < 3; i++) assert.equal((await stack.api('GET', '/healthz', { headers: from('192.0.2.1') })).status, 200);
    assertRefused(await stack.api('GET', '/healthz', { headers: from('192.0.2.1') }), 'RateLimited', 'anonymous', 3);
    assert.equal((await stack.api('GET', '/healthz', { headers: from('192.0.2.2') })).status, 200);
    assert.equal(await rejections(stack, 'anonymous', from('192.0.2.3')), 1);
    await checkRedisKeys(stack, 'limits:anonymous:192.0.2.1', (keys) => assert.equal(keys.length, 1));
  });

  it('counts unknown paths and failed authentications, then checks no token from that address', async function () {
    const ip = from('198.51.100.7');
    assert.equal((await stack.api('GET', '/nowhere', { headers: ip })).status, 404);
    assert.equal((await stack.api('GET', '/v1/projects', { headers: ip })).status, 401);
    assert.equal((await stack.api('GET', '/v1/projects', { headers: { ...ip, Authorization: 'Bearer not.a.token' } })).status, 401);
    assertRefused(await stack.api('GET', '/v1/projects', { headers: { ...ip, Authorization: 'Bearer guess.number.four' } }), 'RateLimited', 'anonymous', 3);
    // A right token from the guessing address is refused too: a guesser cannot tell right from wrong.
    const valid = await stack.token('alice');
    assertRefused(await stack.api('GET', '/v1/projects', { headers: { ...ip, Authorization: `Bearer ${valid}` } }), 'RateLimited', 'anonymous', 3);
    assert.equal((await stack.api('GET', '/v1/projects', { token: valid, headers: from('198.51.100.8') })).status, 200);
  });

  it('lets requests through when Redis is unreachable, with a warning', async function () {
    // In process (the embedded test pass) there is no Redis to lose.
    if (!stack.world.limitsRedis) this.skip();
    stack.world.limitsRedis!.disconnect();
    for (let i = 0; i < 5; i++) {
      const r = await stack.api('GET', '/healthz', { headers: from('203.0.113.9') });
      assert.equal(r.status, 200, `fails open: ${r.text}`);
    }
    assert.ok(stack.logLines.some((l) => l.includes('limit store unavailable')), 'a warning is logged');
  });
});

describe('limits: RATE_LIMITS=off', function () {
  let stack: Stack;
  let oracle: TestMcpServer;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack({
      worker: false,
      env: { RATE_LIMITS: 'off', RATE_LIMIT_REQUESTS: '1', RATE_LIMIT_SUBMISSIONS: '1', RATE_LIMIT_ANONYMOUS: '1', MAX_ACTIVE_TASKS_PER_PROJECT: '1', MAX_SSE_STREAMS_PER_USER: '1' },
    });
  });
  after(async function () {
    await stack?.stop();
    await oracle?.stop();
  });

  it('trips none of the limits', async function () {
    const token = await stack.token('alice');
    for (let i = 0; i < 3; i++) assert.equal((await stack.api('GET', '/healthz')).status, 200);
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'p' } })).body.id;
    assert.equal((await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } })).status, 201);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'echo', arguments: { text: 'x' } } });
      assert.equal(r.status, 202, r.text);
      assert.equal(r.headers.get('ratelimit'), null);
      ids.push(r.body.id);
    }
    const streams = [await holdStream(stack, token, ids[0]!), await holdStream(stack, token, ids[0]!)];
    for (const s of streams) s.close();
    assert.deepEqual(streams.map((s) => s.status), [200, 200]);
    assert.equal((await stack.api('GET', '/v1/projects', { token, headers: { Authorization: 'Bearer wrong' } })).status, 401);
    for (const limit of ['requests', 'submissions', 'anonymous', 'active_tasks', 'streams']) assert.equal(await rejections(stack, limit), 0);
    await checkRedisKeys(stack, 'limits:*', (keys) => assert.deepEqual(keys, []));
  });
});

describe('limits: without TRUST_PROXY, a client cannot pick its own address', function () {
  let stack: Stack;

  before(async function () {
    stack = await startStack({ worker: false, env: { RATE_LIMIT_ANONYMOUS: '3' } });
  });
  after(async function () {
    await stack?.stop();
  });

  it('ignores X-Forwarded-For: a new forged address per request is still one address', async function () {
    for (let i = 0; i < 3; i++) assert.equal((await stack.api('GET', '/healthz', { headers: { 'X-Forwarded-For': `203.0.113.${i}` } })).status, 200);
    const res = await stack.api('GET', '/healthz', { headers: { 'X-Forwarded-For': '203.0.113.99' } });
    assert.equal(res.status, 429, res.text);
    assert.equal(res.body.code, 'RateLimited');
  });
});

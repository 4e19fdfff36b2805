import assert from 'node:assert/strict';
import fc from 'fast-check';
import { freePort } from '../../src/lib/free-port.ts';
import { requestArbitrary, routeGenerators, type FuzzRequest, type FuzzWorld } from '../support/api-fuzz.ts';
import { startLocalHub, type LocalHub } from '../support/local-hub/index.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Property: whatever a client sends to any route, the answer is below 500 and the process stays up.
// `npm test` sends FUZZ_RUNS (default 2,000) generated requests; `npm run fuzz` sends 10,000. FUZZ_SEED replays a run.

const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
const SEED = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

describe(`fuzz: ${RUNS} generated requests over every route, no 5xx`, function () {
  this.timeout(Math.max(300_000, RUNS * 100));
  let stack: Stack;
  let hub: LocalHub;
  let oracle: TestMcpServer;
  let world: FuzzWorld;

  before(async function () {
    [hub, oracle] = await Promise.all([startLocalHub(), startTestMcpServer()]);
    const closedPort = await freePort();
    // No worker: accepted tasks stay queued, so consent and result routes are exercised in their waiting states.
    stack = await startStack({ worker: false, env: { HF_ENDPOINT: hub.url, LOG_LEVEL: 'warn' } });
    const [alice, bob] = await Promise.all([stack.token('alice'), stack.token('bob')]);
    const servers = await Promise.all([
      stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'alice-tools', oracleUrl: oracle.url } }),
      stack.api('POST', '/v1/mcps', { token: bob, body: { name: 'bob-tools', tools: [{ name: 'echo' }] } }),
      stack.api('POST', '/v1/mcps', { token: alice, body: { name: 'alice-doomed', tools: [{ name: 'echo' }] } }),
    ]);
    const projects = await Promise.all([
      stack.api('POST', '/v1/projects', { token: alice, body: { name: 'a' } }),
      stack.api('POST', '/v1/projects', { token: bob, body: { name: 'b' } }),
      stack.api('POST', '/v1/projects', { token: alice, body: { name: 'doomed' } }),
    ]);
    const task = await stack.api('POST', '/v1/tasks', { token: alice, body: { projectId: projects[0].body.id, tool: 'echo', arguments: { text: 'x' } } });
    assert.equal(task.status, 202, task.text);
    const agentSteps = [{ id: 'a', tool: 'echo', arguments: { text: 'x' } }];
    for (const name of ['fuzz-agent', 'doomed-agent']) {
      const agent = await stack.api('POST', `/v1/projects/${projects[0].body.id}/agents`, { token: alice, body: { name, steps: agentSteps } });
      assert.equal(agent.status, 201, agent.text);
    }
    const key = await stack.api('POST', '/v1/api-keys', { token: alice, body: { name: 'fuzz', projectId: projects[0].body.id } });
    assert.equal(key.status, 201, key.text);
    world = {
      // An API key bound to alice's first project bears requests too.
      tokens: [alice, bob, key.body.key],
      apiKeyIds: [key.body.id],
      agentNames: ['fuzz-agent'],
      projectIds: projects.slice(0, 2).map((p) => p.body.id),
      taskIds: [task.body.id],
      serverIds: servers.slice(0, 2).map((s) => s.body.id),
      doomedProjectId: projects[2]!.body.id,
      doomedServerId: servers[2]!.body.id,
      serverNames: ['alice-tools', 'bob-tools'],
      logins: ['alice', 'bob', 'nobody'],
      urls: [
        oracle.url,
        `http://127.0.0.1:${closedPort}/mcp`,
        'http://10.0.0.1/mcp',
        'http://169.254.169.254/latest/meta-data/',
        'http://[::1]:5432/',
        'http://2130706433/',
        'http://[::ffff:10.0.0.1]/',
        'https://0.0.0.0/',
        'ftp://127.0.0.1/',
      ],
    };
  });

  after(async function () {
    await stack?.stop();
    await Promise.all([hub?.stop(), oracle?.stop()]);
  });

  /** Sends one request; an event stream is cut once its status is known (a queued task's stream never ends). */
  async function send(r: FuzzRequest): Promise<{ status: number; text: string }> {
    const headers: Record<string, string> = { ...(r.token !== undefined ? { Authorization: `Bearer ${r.token}` } : {}), ...r.headers };
    let body: string | undefined;
    if (r.rawBody !== undefined) body = r.rawBody;
    else if (r.body !== undefined && r.method !== 'GET' && r.method !== 'DELETE') {
      body = JSON.stringify(r.body);
      headers['Content-Type'] ??= 'application/json';
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), 15_000);
    try {
      const res = await fetch(`${stack.url}${r.path}`, { method: r.method, headers, body, signal: controller.signal });
      if ((res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        controller.abort();
        return { status: res.status, text: '' };
      }
      return { status: res.status, text: await res.text() };
    } finally {
      clearTimeout(timer);
    }
  }

  it('has a generator for every route in the router table', function () {
    const generators = routeGenerators(world);
    const missing = stack.routeTable.filter((r) => r.auth === 'bearer').flatMap((r) => r.methods.map((m) => `${m} ${r.path}`)).filter((k) => !(k in generators));
    assert.deepEqual(missing, [], 'routes the fuzzer does not reach');
  });

  it('answers every generated request below 500, and stays up', async function () {
    const statuses = new Map<number, number>();
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(requestArbitrary(world), async (r) => {
        const res = await send(r);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        if (res.status >= 500) failures.push(`${r.method} ${r.path} ${JSON.stringify(r.body ?? r.rawBody ?? null).slice(0, 300)} → ${res.status} ${res.text.slice(0, 300)}`);
        return res.status < 500;
      }),
      { numRuns: RUNS, ...(SEED !== undefined ? { seed: SEED } : {}), endOnFailure: true },
    );
    const summary = [...statuses.entries()].sort(([a], [b]) => a - b).map(([s, n]) => `${s}×${n}`).join(' ');
    process.stderr.write(`      fuzz: ${RUNS} requests: ${summary}\n`);
    assert.deepEqual(failures, []);
    assert.ok((statuses.get(200) ?? 0) + (statuses.get(201) ?? 0) + (statuses.get(202) ?? 0) > RUNS / 50, `some requests were valid: ${summary}`);
    assert.equal((await send({ method: 'GET', path: '/healthz' })).status, 200, 'the API is still up');
    assert.deepEqual(stack.logLines.filter((l) => l.includes('unhandled error')), [], 'no unexpected error was logged');
  });
});

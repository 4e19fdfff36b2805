import assert from 'node:assert/strict';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

describe('registry', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let legacy: TestMcpServer;
  let token: string;

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    legacy = await startTestMcpServer({ name: 'legacy', transport: 'sse-only' });
    stack = await startStack();
    token = await stack.token('carol');
  });

  after(async function () {
    await stack?.stop();
    await oracle?.stop();
    await legacy?.stop();
  });

  it('discovers tools with tools/list, also from a server that speaks only the legacy SSE transport', async function () {
    const modern = await stack.api('POST', '/v1/mcps', { token, body: { name: 'modern', oracleUrl: oracle.url, heavyTools: ['large'], toolTimeouts: { slow: 5000 } } });
    assert.equal(modern.status, 201, modern.text);
    assert.deepEqual(modern.body.tools.map((t: any) => t.name).sort(), ['echo', 'fail', 'large', 'slow', 'whoami']);
    assert.equal(modern.body.tools.find((t: any) => t.name === 'large').heavy, true);
    assert.equal(modern.body.tools.find((t: any) => t.name === 'slow').timeoutMs, 5000);
    assert.equal(modern.body.tools.find((t: any) => t.name === 'echo').inputSchema.type, 'object');

    const old = await stack.api('POST', '/v1/mcps', { token, body: { name: 'old', oracleUrl: legacy.sseUrl } });
    assert.equal(old.status, 201, old.text);
    assert.ok(old.body.tools.some((t: any) => t.name === 'echo'));
    const rows = await stack.world.db.selectFrom('mcp_tools').select(['name']).where('server_id', '=', old.body.id).execute();
    assert.equal(rows.length, old.body.tools.length);
  });

  it('rejects flags for tools the server does not offer', async function () {
    const r = await stack.api('POST', '/v1/mcps', { token, body: { name: 'typo', oracleUrl: oracle.url, heavyTools: ['nope'] } });
    assert.equal(r.status, 422);
    assert.equal(r.body.code, 'UnknownTool');
    assert.equal((await stack.api('GET', '/v1/mcps/typo', { token })).status, 404);
  });

  it('caches lookups in Redis and invalidates them on every change', async function () {
    const projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'caps' } })).body.id;
    const before = await stack.world.registry.offerings('whoami', projectId);
    assert.deepEqual(before.map((o) => o.server.name).sort(), ['modern', 'old']);
    const keys = await stack.world.redis!.keys(`${stack.config.redisPrefix}registry:v*:tool:whoami`);
    assert.equal(keys.length, 1, 'the lookup was cached');

    const patched = await stack.api('PATCH', '/v1/mcps/old', { token, body: { enabled: false } });
    assert.equal(patched.status, 200, patched.text);
    assert.deepEqual((await stack.world.registry.offerings('whoami', projectId)).map((o) => o.server.name), ['modern'], 'a disabled server is gone at once');

    await stack.api('PATCH', '/v1/mcps/modern', { token, body: { capabilities: { whoami: ['identify'] } } });
    assert.deepEqual((await stack.world.registry.offerings('identify', projectId)).map((o) => o.tool.name), ['whoami'], 'found by capability');
    const byCapability = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool: 'identify', arguments: {} } });
    assert.equal(byCapability.status, 202, byCapability.text);
    const done = await stack.waitForStatus(token, byCapability.body.id, ['succeeded', 'failed']);
    assert.equal(done.status, 'succeeded', JSON.stringify(done));
    assert.equal(oracle.callCount('whoami'), 1, 'the server\'s own tool ran for the capability');
    assert.equal((await stack.world.registry.offerings('large', projectId))[0]!.tool.heavy, true, 'flags survive a patch that does not mention them');

    const removed = await stack.api('DELETE', '/v1/mcps/old', { token });
    assert.equal(removed.status, 204);
    assert.equal((await stack.api('GET', '/v1/mcps/old', { token })).status, 404);
  });

  it('refresh rediscovers the tools and health probes the oracle only', async function () {
    const refreshed = await stack.api('POST', '/v1/mcps/modern/refresh', { token });
    assert.equal(refreshed.status, 200, refreshed.text);
    assert.equal(refreshed.body.tools.find((t: any) => t.name === 'large').heavy, true);
    const up = await stack.api('GET', '/v1/mcps/modern/health', { token });
    assert.equal(up.status, 200);
    assert.equal(up.body.oracle.healthy, true);
    oracle.mode = 'down';
    try {
      const down = await stack.api('GET', '/v1/mcps/modern/health', { token });
      assert.equal(down.body.oracle.healthy, false);
      assert.match(down.body.oracle.reason, /503/);
    } finally {
      oracle.mode = 'up';
    }
  });
});

import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { TargetNotAllowedError } from '../../src/core/errors.ts';
import { callTool } from '../../src/integrations/mcp/call-tool.ts';
import { McpTargetNotAllowedError } from '../../src/integrations/mcp/errors.ts';
import { listTools } from '../../src/integrations/mcp/list-tools.ts';
import { probeEndpoint } from '../../src/integrations/mcp/probe.ts';
import { createOutboundGuard, type OutboundGuard, type ResolveHost } from '../../src/integrations/outbound-guard.ts';
import { parseAllowlist } from '../../src/lib/address-rules.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { startLocalHub, type LocalHub } from '../support/local-hub/index.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type ApiResponse, type Stack } from '../support/stack.ts';

// Every target here is on 127.0.0.1 (or a name an injected lookup maps to loopback): refused connections must
// never be attempted, and allowed ones stay on this machine.

interface Listener {
  port: number;
  url: string;
  connections(): number;
  stop(): Promise<void>;
}

async function listen(handler: http.RequestListener = (_req, res) => void res.end('reached')): Promise<Listener> {
  let connections = 0;
  const server = http.createServer(handler);
  server.on('connection', () => connections++);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    port,
    url: `http://127.0.0.1:${port}/`,
    connections: () => connections,
    stop: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function refusedByGuard(work: Promise<unknown>): Promise<void> {
  await assert.rejects(work, (e: unknown) => {
    const cause = (e as Error).cause;
    assert.ok(cause instanceof TargetNotAllowedError, `expected a refusal, got ${String(e)} (cause ${String(cause)})`);
    return true;
  });
}

const loopbackAs =
  (...answers: string[]): ResolveHost =>
  async () =>
    answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

describe('outbound guard', function () {
  const guards: OutboundGuard[] = [];
  const guard = (allowlist: string, lookup?: ResolveHost) => {
    const g = createOutboundGuard({ allowlist: parseAllowlist(allowlist), ...(lookup ? { lookup } : {}) });
    guards.push(g);
    return g;
  };
  let target: Listener;

  before(async function () {
    target = await listen();
  });
  after(async function () {
    await Promise.all(guards.map((g) => g.close()));
    await target?.stop();
  });

  describe('the guarded fetch', function () {
    it('refuses a loopback literal in any spelling without connecting, and reaches it once 127.0.0.0/8 is allowed', async function () {
      const strict = guard('');
      for (const url of [target.url, `http://2130706433:${target.port}/`, `http://0177.0.0.1:${target.port}/`, `http://[::ffff:127.0.0.1]:${target.port}/`, `http://[::1]:${target.port}/`]) {
        await refusedByGuard(strict.fetch(url));
      }
      assert.equal(target.connections(), 0, 'nothing reached the listener');

      const res = await guard('127.0.0.0/8').fetch(target.url);
      assert.equal(res.status, 200);
      assert.equal(await res.text(), 'reached');
      assert.equal(target.connections(), 1);
    });

    it('refuses a name that resolves to loopback unless the address or the host:port is allowed', async function () {
      const before = target.connections();
      const url = `http://internal.test:${target.port}/`;
      await refusedByGuard(guard('', loopbackAs('127.0.0.1')).fetch(url));
      await refusedByGuard(guard('', loopbackAs('8.8.8.8', '127.0.0.1')).fetch(url));
      await refusedByGuard(guard(`internal.test:${target.port + 1}`, loopbackAs('127.0.0.1')).fetch(url));
      assert.equal(target.connections(), before);

      assert.equal(await (await guard('127.0.0.0/8', loopbackAs('127.0.0.1')).fetch(url)).text(), 'reached');
      assert.equal(await (await guard(`internal.test:${target.port}`, loopbackAs('127.0.0.1')).fetch(url)).text(), 'reached');
      assert.equal(target.connections(), before + 2);
    });

    it('DNS rebinding fails: the address connected to is checked, not the one the early check saw', async function () {
      const before = target.connections();
      const answers: string[] = [];
      // First answer: an address an IP:port entry allows. Then the name turns into 127.0.0.1.
      const rebinding: ResolveHost = async () => {
        const address = answers.length === 0 ? '127.0.0.2' : '127.0.0.1';
        answers.push(address);
        return [{ address, family: 4 }];
      };
      const g = guard(`127.0.0.2:${target.port}`, rebinding);
      const url = `http://rebind.test:${target.port}/`;
      await g.checkUrl(url);
      await refusedByGuard(g.fetch(url));
      assert.deepEqual(answers, ['127.0.0.2', '127.0.0.1'], 'looked up once to check, once to connect');
      assert.equal(target.connections(), before, 'never connected');
    });

    it('does not follow redirects, even to an allowed address', async function () {
      const next = await listen();
      const redirecting = await listen((_req, res) => void res.writeHead(302, { location: next.url }).end());
      try {
        const res = await guard('127.0.0.0/8').fetch(redirecting.url, { redirect: 'follow' });
        assert.equal(res.status, 302);
        assert.equal(res.headers.get('location'), next.url);
        assert.equal(next.connections(), 0);
      } finally {
        await redirecting.stop();
        await next.stop();
      }
    });
  });

  describe('the MCP client and probe use it for every request', function () {
    let both: TestMcpServer;
    let sseOnly: TestMcpServer;
    before(async function () {
      both = await startTestMcpServer({ name: 'guarded-both' });
      sseOnly = await startTestMcpServer({ name: 'guarded-sse', transport: 'sse-only' });
    });
    after(async function () {
      await both?.stop();
      await sseOnly?.stop();
    });

    it('Streamable HTTP, legacy SSE (its event stream too) and the health GET are refused before any request', async function () {
      const strict = guard('');
      const headers = { Authorization: 'Bearer marker' };
      for (const endpoint of [
        { url: both.url, transport: 'streamable-http' as const },
        { url: both.url, transport: 'auto' as const },
        { url: sseOnly.sseUrl, transport: 'sse' as const },
        { url: sseOnly.url, transport: 'auto' as const, sseUrl: sseOnly.sseUrl },
      ]) {
        const e = await callTool({ ...endpoint, headers, fetch: strict.fetch }, 'echo', { text: 'x' }, { timeoutMs: 5000 }).catch((err: unknown) => err);
        assert.ok(e instanceof McpTargetNotAllowedError, `${endpoint.transport} ${endpoint.url}: ${String(e)}`);
        assert.equal(e.permanent, true);
        await assert.rejects(listTools({ ...endpoint, headers, fetch: strict.fetch }, { timeoutMs: 5000 }), McpTargetNotAllowedError);
      }
      const probe = await probeEndpoint({ url: both.url, transport: 'auto', headers, fetch: strict.fetch }, { healthPath: '/health', timeoutMs: 2000 });
      assert.deepEqual([probe.healthy, probe.reason], [false, 'target not allowed']);
      assert.deepEqual(both.seenAuthorization(), [], 'no request reached the server');
      assert.deepEqual(sseOnly.seenAuthorization(), [], 'no request (not even the SSE GET) reached the server');

      const allowed = guard('127.0.0.0/8');
      for (const endpoint of [
        { url: both.url, transport: 'streamable-http' as const },
        { url: sseOnly.sseUrl, transport: 'sse' as const },
      ]) {
        const r = await callTool({ ...endpoint, headers, fetch: allowed.fetch }, 'echo', { text: 'through the guard' }, { timeoutMs: 5000 });
        assert.match(JSON.stringify(r.content), /through the guard/);
      }
      assert.equal((await probeEndpoint({ url: both.url, transport: 'auto', fetch: allowed.fetch }, { healthPath: '/health', timeoutMs: 2000 })).healthy, true);
    });

    it('a health path that resolves to another origin is never requested', async function () {
      const allowed = guard('127.0.0.0/8');
      for (const healthPath of [`//127.0.0.1:${target.port}/x`, `/\\127.0.0.1:${target.port}/x`]) {
        const before = target.connections();
        const probe = await probeEndpoint({ url: both.url, transport: 'auto', fetch: allowed.fetch }, { healthPath, timeoutMs: 2000 });
        assert.deepEqual([probe.healthy, probe.reason], [false, 'invalid health path'], healthPath);
        assert.equal(target.connections(), before, healthPath);
      }
    });
  });

  describe('through the API, with only two closed ports and one non-MCP listener allowed', function () {
    let stack: Stack;
    let hub: LocalHub;
    let notMcp: Listener;
    let internal: Listener;
    let closedA: number;
    let closedB: number;
    let token: string;
    let projectId: string;

    before(async function () {
      hub = await startLocalHub();
      internal = await listen();
      notMcp = await listen((_req, res) => void res.writeHead(404).end('not here'));
      closedA = await freePort();
      closedB = await freePort();
      stack = await startStack({
        worker: false,
        env: { OUTBOUND_ALLOWLIST: `127.0.0.1:${closedA},127.0.0.1:${closedB},127.0.0.1:${notMcp.port}`, HF_ENDPOINT: hub.url },
      });
      token = await stack.token('mallory');
      projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'ssrf' } })).body.id;
      const declared = await stack.api('POST', '/v1/mcps', { token, body: { name: 'declared', tools: [{ name: 'echo' }] } });
      assert.equal(declared.status, 201, declared.text);
    });
    after(async function () {
      await stack?.stop();
      await hub?.stop();
      await notMcp?.stop();
      await internal?.stop();
    });

    const assertNotAllowed = (what: string, res: ApiResponse) => {
      assert.equal(res.status, 422, `${what}: ${res.text}`);
      assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
      assert.equal(res.body.code, 'TargetNotAllowed', what);
      assert.doesNotMatch(res.text, /127\.0\.0|::1|169\.254|loopback|private|resolv/i, `${what}: says no more than "not allowed"`);
    };

    it('registering an internal oracleUrl → 422 TargetNotAllowed, nothing contacted, nothing stored', async function () {
      const p = internal.port;
      const urls = [
        `http://127.0.0.1:${p}/mcp`,
        `http://localhost:${p}/mcp`,
        `http://2130706433:${p}/`,
        `http://0177.0.0.1:${p}/`,
        `http://0x7f.1:${p}/`,
        `http://[::ffff:127.0.0.1]:${p}/`,
        `http://[::1]:${p}/`,
        'http://127.0.0.1:6379/',
        'http://[::1]:5432/',
        `http://user:pw@127.0.0.1:${closedA}/`,
      ];
      for (const [i, oracleUrl] of urls.entries()) {
        assertNotAllowed(oracleUrl, await stack.api('POST', '/v1/mcps', { token, body: { name: `internal-${i}`, oracleUrl } }));
      }
      // Addresses off this machine: with declared tools nothing would be contacted even if the guard failed.
      for (const [i, oracleUrl] of ['http://169.254.169.254/latest/meta-data/', 'http://[fd00::1]/', 'http://10.0.0.1:8080/'].entries()) {
        assertNotAllowed(oracleUrl, await stack.api('POST', '/v1/mcps', { token, body: { name: `declared-${i}`, oracleUrl, tools: [{ name: 'echo' }] } }));
      }
      assert.equal(internal.connections(), 0, 'the listener saw no connection');
      const rows = await stack.world.db.selectFrom('mcp_servers').select('name').execute();
      assert.deepEqual(rows.map((r) => r.name), ['declared']);
    });

    it('PATCHing oracleUrl to an internal address → 422, the server unchanged', async function () {
      for (const oracleUrl of [`http://127.0.0.1:${internal.port}/mcp`, `http://2130706433:${internal.port}/`]) {
        assertNotAllowed(oracleUrl, await stack.api('PATCH', '/v1/mcps/declared', { token, body: { oracleUrl } }));
      }
      assert.equal((await stack.api('GET', '/v1/mcps/declared', { token })).body.oracleUrl, null);
      assert.equal(internal.connections(), 0);
    });

    it('binding a Space by an internal url, or by id when the Hub names an internal host → 422, the Space never contacted', async function () {
      const space = await hub.spaces.add('bob/local', { stage: 'RUNNING' });
      assertNotAllowed('bind by url', await stack.api('PUT', `/v1/projects/${projectId}/spaces/declared`, { token, body: { url: `http://127.0.0.1:${internal.port}/mcp` } }));
      assertNotAllowed('bind by id and url', await stack.api('PUT', `/v1/projects/${projectId}/spaces/declared`, { token, body: { spaceId: 'bob/local', url: `http://[::1]:${internal.port}/` } }));
      assertNotAllowed('bind by id', await stack.api('PUT', `/v1/projects/${projectId}/spaces/declared`, { token, body: { spaceId: 'bob/local' } }));
      assert.ok(hub.requests().some((r) => r.path.startsWith('/api/spaces/bob/local')), 'the Hub itself was asked');
      assert.deepEqual(hub.spaces.hostRequests('bob/local'), [], `the Space host ${space.host} was not`);
      assert.equal(internal.connections(), 0);
      assert.equal((await stack.world.db.selectFrom('space_bindings').select('url').execute()).length, 0);
    });

    it('a healthPath that is not a plain path on the server → 400', async function () {
      for (const healthPath of [`//127.0.0.1:${internal.port}/x`, '/\\host/x', '/a/../b', '/a/%2E%2e/b', 'http://host/x', 'health', '/x\ty', '/x\u0000', `/${'a'.repeat(200)}`]) {
        const res = await stack.api('PATCH', '/v1/mcps/declared', { token, body: { healthPath } });
        assert.equal(res.status, 400, `${JSON.stringify(healthPath)}: ${res.text}`);
        // A NUL is refused for the whole body before any schema looks at it.
        assert.equal(res.body.code, healthPath.includes('\u0000') ? 'NulCharacter' : 'ValidationFailed');
      }
      const ok = await stack.api('PATCH', '/v1/mcps/declared', { token, body: { healthPath: '/gradio_api/health?full=1' } });
      assert.equal(ok.status, 200, ok.text);
    });

    it('discovery failures read the same whatever the port (closed, closed, open but not MCP): no port scanner', async function () {
      const bodies: unknown[] = [];
      for (const [i, port] of [closedA, closedB, notMcp.port].entries()) {
        const res = await stack.api('POST', '/v1/mcps', { token, body: { name: `probe-${i}`, oracleUrl: `http://127.0.0.1:${port}/mcp` } });
        assert.equal(res.status, 422, res.text);
        assert.equal(res.body.code, 'DiscoveryFailed');
        const { requestId: _r, instance: _i, ...rest } = res.body;
        bodies.push(rest);
      }
      assert.ok(notMcp.connections() > 0, 'the allowed listener was really asked');
      assert.deepEqual(bodies[1], bodies[0]);
      assert.deepEqual(bodies[2], bodies[0]);
      assert.doesNotMatch(JSON.stringify(bodies[0]), /127\.0\.0\.1|ECONN|refused|404/);
      assert.ok(stack.logLines.some((l) => l.includes('tool discovery failed')), 'the cause is logged');
    });

    it('the health check names no per-target error', async function () {
      const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'closed', oracleUrl: `http://127.0.0.1:${closedA}/mcp`, tools: [{ name: 'echo' }] } });
      assert.equal(reg.status, 201, reg.text);
      const health = await stack.api('GET', '/v1/mcps/closed/health', { token });
      assert.equal(health.status, 200, health.text);
      assert.equal(health.body.oracle.healthy, false);
      assert.equal(health.body.oracle.reason, 'unreachable');
    });
  });
});

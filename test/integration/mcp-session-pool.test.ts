import assert from 'node:assert/strict';
import { callTool } from '../../src/integrations/mcp/call-tool.ts';
import type { ToolProgress } from '../../src/integrations/mcp/call-tool.ts';
import type { McpEndpoint } from '../../src/integrations/mcp/connect.ts';
import { McpAbortedError, McpHttpError, McpUnreachableError } from '../../src/integrations/mcp/errors.ts';
import { listTools } from '../../src/integrations/mcp/list-tools.ts';
import { probeEndpoint } from '../../src/integrations/mcp/probe.ts';
import { createMcpSessionPool, sessionKey, type McpSessionPool, type McpSessionPoolOptions } from '../../src/integrations/mcp/session-pool.ts';
import { startTestMcpServer } from '../support/mcp-test-server.ts';
import type { TestMcpServer } from '../support/mcp-test-server.ts';

const DEFAULTS: McpSessionPoolOptions = { maxPerKey: 4, maxTotal: 16, maxCallsPerSession: 32, idleMs: 60_000, connectTimeoutMs: 5000 };

async function eventually(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A restart takes longer than a tick: let the client see its kept-alive sockets close. A request written to a socket
 * the server closed a moment earlier ("other side closed") is reported, not retried: it may have been read.
 */
const settle = () => new Promise((r) => setTimeout(r, 100));

const text = (r: { content: unknown[] }) => r.content.map((c) => (c as { text: string }).text).join('');

describe('MCP session pool against real MCP servers', function () {
  let both: TestMcpServer;
  let stateful: TestMcpServer;
  const pools: McpSessionPool[] = [];
  const pool = (o: Partial<McpSessionPoolOptions> = {}) => {
    const p = createMcpSessionPool({ ...DEFAULTS, ...o });
    pools.push(p);
    return p;
  };

  before(async () => {
    both = await startTestMcpServer({ name: 'both' });
    stateful = await startTestMcpServer({ name: 'stateful', transport: 'streamable-http', stateful: true });
  });
  after(async () => {
    await Promise.all([both.stop(), stateful.stop()]);
  });
  beforeEach(() => {
    for (const s of [both, stateful]) s.resetStats();
  });
  afterEach(async () => {
    await Promise.all(pools.splice(0).map((p) => p.close()));
  });

  const endpoints = (): Array<[string, () => McpEndpoint, () => TestMcpServer]> => [
    ['streamable-http (stateless)', () => ({ url: both.url, transport: 'streamable-http' }), () => both],
    ['streamable-http (sessions)', () => ({ url: stateful.url, transport: 'streamable-http' }), () => stateful],
    ['legacy sse', () => ({ url: both.sseUrl, transport: 'sse' }), () => both],
  ];

  for (const [kind, endpoint, server] of endpoints()) {
    it(`reuses one initialized session for many calls over ${kind}`, async () => {
      const sessions = pool();
      for (let i = 0; i < 5; i++) {
        assert.equal(text(await callTool(endpoint(), 'echo', { text: `seq ${i}` }, { timeoutMs: 5000, sessions })), `seq ${i}`);
      }
      const outs = await Promise.all(Array.from({ length: 10 }, (_, i) => callTool(endpoint(), 'echo', { text: `par ${i}` }, { timeoutMs: 5000, sessions })));
      assert.deepEqual(outs.map(text), Array.from({ length: 10 }, (_, i) => `par ${i}`));
      assert.equal(server().initializeCount(), 1);
      assert.equal(server().callCount('echo'), 15);
      assert.equal(sessions.stats().opened, 1);
      assert.equal(sessions.stats().reused, 14);
    });

    it(`routes interleaved progress of concurrent calls on one session to each call over ${kind}`, async () => {
      const sessions = pool();
      // Open the session first, so every call below shares it.
      await callTool(endpoint(), 'echo', { text: 'warm' }, { timeoutMs: 5000, sessions });
      const runs = [3, 4, 5, 6].map((steps) => {
        const seen: ToolProgress[] = [];
        const done = callTool(endpoint(), 'slow', { ms: 40 * steps, steps }, { timeoutMs: 10_000, sessions, onProgress: (p) => seen.push(p) });
        return { steps, seen, done };
      });
      await Promise.all(runs.map((r) => r.done));
      await eventually(() => server().maxInFlight() >= 2);
      for (const r of runs) {
        assert.deepEqual(
          r.seen.map((p) => [p.progress, p.total, p.message]),
          Array.from({ length: r.steps }, (_, i) => [i + 1, r.steps, `step ${i + 1}`]),
          `progress of the ${r.steps}-step call`,
        );
      }
      assert.equal(server().initializeCount(), 1);
      const tokens = server().seenCallMeta().map((m) => m?.progressToken).filter((t) => t !== undefined);
      assert.equal(new Set(tokens).size, 4, 'each call has its own progress token');
    });
  }

  for (const [kind, endpoint, server] of endpoints()) {
    it(`aborting one call on a shared session stops its tool, and the other call goes on, over ${kind}`, async () => {
      const sessions = pool();
      await callTool(endpoint(), 'echo', { text: 'warm' }, { timeoutMs: 5000, sessions });
      const controller = new AbortController();
      const aborted = callTool(endpoint(), 'slow', { ms: 5000 }, { timeoutMs: 10_000, sessions, signal: controller.signal }).catch((e: unknown) => e);
      const other = callTool(endpoint(), 'slow', { ms: 600, steps: 3 }, { timeoutMs: 10_000, sessions });
      await eventually(() => server().inFlight() === 2);
      controller.abort();
      assert.ok((await aborted) instanceof McpAbortedError);
      await eventually(() => server().inFlight() === 1, 2000);
      assert.match(text(await other), /^done after/);
      assert.equal(server().initializeCount(), 1);
    });
  }

  it('keeps sessions apart by headers: one token never serves another', async () => {
    const locked = await startTestMcpServer({ name: 'locked', transport: 'streamable-http', stateful: true, requireBearer: 'token-a' });
    try {
      const sessions = pool();
      const a: McpEndpoint = { url: locked.url, transport: 'streamable-http', headers: { Authorization: 'Bearer token-a' } };
      const b: McpEndpoint = { url: locked.url, transport: 'streamable-http', headers: { Authorization: 'Bearer token-b' } };
      assert.notEqual(sessionKey(a), sessionKey(b));
      assert.equal(text(await callTool(a, 'echo', { text: 'a' }, { timeoutMs: 5000, sessions })), 'a');
      // Were b served by a's session, the server would accept it.
      const err = await callTool(b, 'echo', { text: 'b' }, { timeoutMs: 5000, sessions }).catch((e: unknown) => e);
      assert.ok(err instanceof McpHttpError && err.status === 401, `expected 401, got ${String(err)}`);
      assert.equal(text(await callTool(a, 'echo', { text: 'a2' }, { timeoutMs: 5000, sessions })), 'a2');
      assert.equal(locked.initializeCount(), 1);
      assert.equal(locked.callCount('echo'), 2);
      assert.ok(locked.seenAuthorization().includes('Bearer token-b'));
    } finally {
      await locked.stop();
    }
  });

  it('closes a session left idle, and opens a new one on the next call', async () => {
    const sessions = pool({ idleMs: 150 });
    const sse: McpEndpoint = { url: both.sseUrl, transport: 'sse' };
    await callTool(sse, 'echo', { text: '1' }, { timeoutMs: 5000, sessions });
    assert.equal(both.openSseStreams(), 1);
    assert.equal(sessions.stats().sessions, 1);
    await eventually(() => sessions.stats().sessions === 0 && both.openSseStreams() === 0);
    await callTool(sse, 'echo', { text: '2' }, { timeoutMs: 5000, sessions });
    assert.equal(both.initializeCount(), 2);
  });

  it('replaces a session the server forgot (restart): the call is retried once, and runs once', async () => {
    const sessions = pool();
    const ep: McpEndpoint = { url: stateful.url, transport: 'streamable-http' };
    await callTool(ep, 'echo', { text: 'before' }, { timeoutMs: 5000, sessions });
    await stateful.stop();
    await settle();
    await stateful.restart();
    // The pooled session's id is unknown to the restarted server: 404, the request never ran, a fresh session serves it.
    assert.equal(text(await callTool(ep, 'echo', { text: 'after' }, { timeoutMs: 5000, sessions })), 'after');
    assert.equal(stateful.callCount('echo'), 2);
    assert.equal(stateful.initializeCount(), 2);
    assert.equal(sessions.stats().retried, 1);
    assert.equal(sessions.stats().sessions, 1);
  });

  it('opens a new legacy SSE session after the server restarted', async () => {
    const sessions = pool();
    const ep: McpEndpoint = { url: both.sseUrl, transport: 'sse' };
    await callTool(ep, 'echo', { text: 'before' }, { timeoutMs: 5000, sessions });
    await both.stop();
    await settle();
    await both.restart();
    assert.equal(text(await callTool(ep, 'echo', { text: 'after' }, { timeoutMs: 5000, sessions })), 'after');
    assert.equal(both.callCount('echo'), 2);
    assert.equal(both.initializeCount(), 2);
  });

  it('reports a call whose server died while it ran, and never runs it again', async () => {
    for (const ep of [{ url: both.url, transport: 'streamable-http' }, { url: both.sseUrl, transport: 'sse' }] satisfies McpEndpoint[]) {
      both.resetStats();
      const sessions = pool();
      await callTool(ep, 'echo', { text: 'warm' }, { timeoutMs: 5000, sessions });
      const call = callTool(ep, 'slow', { ms: 2000 }, { timeoutMs: 10_000, sessions }).catch((e: unknown) => e);
      await eventually(() => both.inFlight() === 1);
      await both.stop();
      await both.restart();
      const err = await call;
      assert.ok(err instanceof McpUnreachableError, `${ep.transport}: expected McpUnreachableError, got ${String(err)}`);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(both.callCount('slow'), 1);
      assert.equal(sessions.stats().retried, 0);
      // The broken session is not offered again.
      assert.equal(text(await callTool(ep, 'echo', { text: 'next' }, { timeoutMs: 5000, sessions })), 'next');
      assert.equal(both.callCount('slow'), 1);
    }
  });

  it('bounds sessions per key: calls beyond the bound share the open sessions', async () => {
    const sessions = pool({ maxPerKey: 2, maxCallsPerSession: 1 });
    const ep: McpEndpoint = { url: stateful.url, transport: 'streamable-http' };
    await Promise.all(Array.from({ length: 6 }, () => callTool(ep, 'slow', { ms: 200 }, { timeoutMs: 5000, sessions })));
    assert.equal(stateful.maxInFlight(), 6);
    assert.equal(stateful.initializeCount(), 2);
    assert.equal(sessions.stats().sessions, 2);
  });

  it('bounds sessions overall: an idle session of another key makes room, busy ones are not touched', async () => {
    const sessions = pool({ maxTotal: 1 });
    const a: McpEndpoint = { url: stateful.url, transport: 'streamable-http' };
    const b: McpEndpoint = { url: both.url, transport: 'streamable-http' };
    await callTool(a, 'echo', { text: 'a' }, { timeoutMs: 5000, sessions });
    await callTool(b, 'echo', { text: 'b' }, { timeoutMs: 5000, sessions });
    assert.equal(sessions.stats().sessions, 1);
    assert.equal(sessions.stats().keys, 1);
    // b's session is busy: a gets a one-off session for the call, not a pooled one.
    await Promise.all([
      callTool(b, 'slow', { ms: 300 }, { timeoutMs: 5000, sessions }),
      (async () => {
        await eventually(() => both.inFlight() === 1);
        await callTool(a, 'echo', { text: 'a2' }, { timeoutMs: 5000, sessions });
        assert.equal(sessions.stats().sessions, 1);
      })(),
    ]);
    assert.equal(stateful.initializeCount(), 2);
  });

  it('serves probes and tool discovery from the same session as calls', async () => {
    const sessions = pool();
    const ep: McpEndpoint = { url: stateful.url, transport: 'streamable-http' };
    assert.equal((await probeEndpoint(ep, { timeoutMs: 5000, sessions })).healthy, true);
    assert.ok((await listTools(ep, { timeoutMs: 5000, sessions })).some((t) => t.name === 'echo'));
    await callTool(ep, 'echo', { text: 'x' }, { timeoutMs: 5000, sessions });
    assert.equal(stateful.initializeCount(), 1);
  });

  it('sends the caller’s _meta with tools/call', async () => {
    const sessions = pool();
    const meta = { 'dev.orchestrator/task': { id: 't-1', attempt: 2, idempotencyKey: 't-1' } };
    await callTool({ url: both.url, transport: 'streamable-http' }, 'echo', { text: 'x' }, { timeoutMs: 5000, sessions, meta });
    assert.deepEqual(both.seenCallMeta(), [meta]);
  });

  it('closes every session on close()', async () => {
    const sessions = pool();
    await callTool({ url: both.sseUrl, transport: 'sse' }, 'echo', { text: 'x' }, { timeoutMs: 5000, sessions });
    await callTool({ url: stateful.url, transport: 'streamable-http' }, 'echo', { text: 'x' }, { timeoutMs: 5000, sessions });
    assert.equal(both.openSseStreams(), 1);
    await sessions.close();
    assert.equal(sessions.stats().sessions, 0);
    await eventually(() => both.openSseStreams() === 0);
    // After close, calls still work, on connections of their own.
    await callTool({ url: both.url, transport: 'streamable-http' }, 'echo', { text: 'late' }, { timeoutMs: 5000, sessions });
    assert.equal(sessions.stats().sessions, 0);
  });
});

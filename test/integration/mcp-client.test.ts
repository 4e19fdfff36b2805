import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { callTool } from '../../src/integrations/mcp/call-tool.ts';
import type { ToolProgress } from '../../src/integrations/mcp/call-tool.ts';
import { connectMcp } from '../../src/integrations/mcp/connect.ts';
import type { McpEndpoint } from '../../src/integrations/mcp/connect.ts';
import {
  McpAbortedError,
  McpHttpError,
  McpInvalidArgumentsError,
  McpTimeoutError,
  McpToolError,
  McpToolNotFoundError,
  McpUnreachableError,
  isPermanentMcpError,
} from '../../src/integrations/mcp/errors.ts';
import { listTools } from '../../src/integrations/mcp/list-tools.ts';
import { probeEndpoint } from '../../src/integrations/mcp/probe.ts';
import { largeText, startTestMcpServer } from '../support/mcp-test-server.ts';
import type { TestMcpServer } from '../support/mcp-test-server.ts';

const TOOL_NAMES = ['echo', 'fail', 'large', 'slow', 'whoami'];

async function rejectsWith<E extends Error>(
  work: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
): Promise<E> {
  try {
    await work;
  } catch (e) {
    assert.ok(e instanceof type, `expected ${type.name}, got ${String(e)}`);
    return e;
  }
  assert.fail(`expected ${type.name}, but the call succeeded`);
}

async function eventually(check: () => boolean, ms = 3000): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) assert.fail('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

function textOf(content: unknown[]): string {
  return content.map((c) => (c as { text: string }).text).join('');
}

describe('MCP client against real MCP servers', function () {
  let both: TestMcpServer;
  let sseOnly: TestMcpServer;
  let streamableOnly: TestMcpServer;

  before(async () => {
    both = await startTestMcpServer({ name: 'both' });
    sseOnly = await startTestMcpServer({ name: 'legacy', transport: 'sse-only' });
    streamableOnly = await startTestMcpServer({ name: 'modern', transport: 'streamable-http' });
  });
  after(async () => {
    await Promise.all([both.stop(), sseOnly.stop(), streamableOnly.stop()]);
  });
  beforeEach(() => {
    for (const s of [both, sseOnly, streamableOnly]) {
      s.mode = 'up';
      s.failNextCalls = 0;
      s.resetStats();
    }
  });

  describe('listTools', () => {
    it('lists tools over Streamable HTTP', async () => {
      const tools = await listTools({ url: streamableOnly.url, transport: 'streamable-http' }, { timeoutMs: 5000 });
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
      const echo = tools.find((t) => t.name === 'echo');
      assert.equal(echo?.description, 'Echoes text back');
      assert.equal(echo?.inputSchema.type, 'object');
      assert.deepEqual((echo?.inputSchema.properties as Record<string, unknown>).text, { type: 'string' });
    });

    it("falls back to legacy SSE with 'auto' on an SSE-only server", async () => {
      for (const url of [sseOnly.sseUrl, sseOnly.url]) {
        const tools = await listTools({ url, transport: 'auto' }, { timeoutMs: 5000 });
        assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
      }
      const conn = await connectMcp({ url: sseOnly.sseUrl, transport: 'auto' }, { timeoutMs: 5000 });
      try {
        assert.equal(conn.transportUsed, 'sse');
      } finally {
        await conn.close();
      }
      await eventually(() => sseOnly.openSseStreams() === 0);
    });

    it("uses Streamable HTTP with 'auto' when the server speaks it", async () => {
      const conn = await connectMcp({ url: both.url, transport: 'auto' }, { timeoutMs: 5000 });
      try {
        assert.equal(conn.transportUsed, 'streamable-http');
        assert.equal(conn.client.getServerVersion()?.name, 'both');
      } finally {
        await conn.close();
      }
    });

    it("lists tools with transport 'sse'", async () => {
      const tools = await listTools({ url: both.sseUrl, transport: 'sse' }, { timeoutMs: 5000 });
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOL_NAMES);
      await eventually(() => both.openSseStreams() === 0);
    });

    it("does not fall back when transport is 'streamable-http' and the server is SSE-only", async () => {
      const e = await rejectsWith(
        listTools({ url: sseOnly.sseUrl, transport: 'streamable-http' }, { timeoutMs: 5000 }),
        McpHttpError,
      );
      assert.equal(e.status, 405);
      assert.equal(isPermanentMcpError(e), true);
    });
  });

  describe('callTool', () => {
    for (const kind of ['streamable-http', 'sse'] as const) {
      const endpoint = (): McpEndpoint => ({ url: kind === 'sse' ? both.sseUrl : both.url, transport: kind });

      it(`echoes over ${kind}`, async () => {
        const result = await callTool(endpoint(), 'echo', { text: 'héllo' }, { timeoutMs: 5000 });
        assert.deepEqual(result.content, [{ type: 'text', text: 'héllo' }]);
        assert.equal(both.callCount('echo'), 1);
        await eventually(() => both.openSseStreams() === 0);
      });

      it(`delivers progress in order over ${kind}`, async () => {
        const seen: ToolProgress[] = [];
        const result = await callTool(endpoint(), 'slow', { ms: 300, steps: 3 }, {
          timeoutMs: 5000,
          onProgress: (p) => seen.push(p),
        });
        assert.match(textOf(result.content), /^done after \d+ ms$/);
        assert.deepEqual(seen, [
          { progress: 1, total: 3, message: 'step 1' },
          { progress: 2, total: 3, message: 'step 2' },
          { progress: 3, total: 3, message: 'step 3' },
        ]);
      });

      it(`aborts a running call over ${kind} and the server stops the tool`, async () => {
        const controller = new AbortController();
        const started = Date.now();
        const call = callTool(endpoint(), 'slow', { ms: 10_000, steps: 100 }, {
          timeoutMs: 20_000,
          signal: controller.signal,
        });
        await eventually(() => both.inFlight() === 1);
        controller.abort();
        await rejectsWith(call, McpAbortedError);
        assert.ok(Date.now() - started < 2000, 'abort took too long');
        await eventually(() => both.inFlight() === 0, 2000);
        await eventually(() => both.openSseStreams() === 0);
      });

      it(`returns a 2 MiB output intact over ${kind}`, async () => {
        const bytes = 2 * 1024 * 1024;
        const result = await callTool(endpoint(), 'large', { bytes }, { timeoutMs: 20_000 });
        assert.equal(result.content.length, 1);
        const text = textOf(result.content);
        assert.equal(text.length, bytes);
        assert.ok(text === largeText(bytes), 'content differs from the expected pattern');
      });

      it(`maps tool failures over ${kind}`, async () => {
        const failed = await rejectsWith(callTool(endpoint(), 'fail', { message: 'disk on fire' }, { timeoutMs: 5000 }), McpToolError);
        assert.equal(failed.text, 'disk on fire');
        assert.equal(failed.code, 'McpToolError');
        assert.equal(isPermanentMcpError(failed), true);

        const missing = await rejectsWith(callTool(endpoint(), 'no-such-tool', {}, { timeoutMs: 5000 }), McpToolNotFoundError);
        assert.equal(missing.tool, 'no-such-tool');
        assert.equal(isPermanentMcpError(missing), true);

        const invalid = await rejectsWith(
          callTool(endpoint(), 'echo', { text: 42 }, { timeoutMs: 5000 }),
          McpInvalidArgumentsError,
        );
        assert.match(invalid.message, /text/);
        assert.equal(isPermanentMcpError(invalid), true);
        assert.equal(both.callCount('echo'), 0);
      });
    }

    it('times out with McpTimeoutError and the tool stops', async () => {
      const started = Date.now();
      const e = await rejectsWith(callTool({ url: both.url, transport: 'auto' }, 'slow', { ms: 10_000 }, { timeoutMs: 500 }), McpTimeoutError);
      const elapsed = Date.now() - started;
      assert.ok(elapsed >= 450 && elapsed < 2000, `took ${elapsed} ms`);
      assert.equal(isPermanentMcpError(e), false);
      await eventually(() => both.inFlight() === 0, 2000);
    });

    it('keeps progress from extending a call past timeoutMs', async () => {
      const started = Date.now();
      await rejectsWith(
        callTool({ url: both.url, transport: 'auto' }, 'slow', { ms: 5000, steps: 50 }, { timeoutMs: 600, onProgress: () => {} }),
        McpTimeoutError,
      );
      assert.ok(Date.now() - started < 2000);
    });

    it('rejects at once when the signal is already aborted', async () => {
      await rejectsWith(
        callTool({ url: both.url, transport: 'auto' }, 'echo', { text: 'x' }, { timeoutMs: 5000, signal: AbortSignal.abort() }),
        McpAbortedError,
      );
      assert.equal(both.callCount(), 0);
    });

    it('tracks concurrent executions on the server', async () => {
      const calls = Array.from({ length: 3 }, () =>
        callTool({ url: both.url, transport: 'auto' }, 'slow', { ms: 300 }, { timeoutMs: 5000 }),
      );
      await Promise.all(calls);
      assert.equal(both.maxInFlight(), 3);
      assert.equal(both.inFlight(), 0);
      assert.equal(both.callCount('slow'), 3);
    });
  });

  describe('unhealthy servers', () => {
    it('a stopped server is unreachable (transient), and reachable again after restart', async () => {
      const s = await startTestMcpServer({ name: 'flaky' });
      try {
        await s.stop();
        for (const endpoint of [
          { url: s.url, transport: 'auto' as const },
          { url: s.sseUrl, transport: 'sse' as const },
        ]) {
          const e = await rejectsWith(callTool(endpoint, 'echo', { text: 'x' }, { timeoutMs: 5000 }), McpUnreachableError);
          assert.equal(e.message, 'connection refused');
          assert.equal(isPermanentMcpError(e), false);
        }
        const probe = await probeEndpoint({ url: s.url, transport: 'auto' }, { timeoutMs: 2000 });
        assert.equal(probe.healthy, false);
        // Shown to users: generic, so probing URLs cannot tell a closed port from an unknown host.
        assert.equal(probe.reason, 'unreachable');

        await s.restart();
        const result = await callTool({ url: s.url, transport: 'auto' }, 'whoami', {}, { timeoutMs: 5000 });
        assert.equal(textOf(result.content), 'flaky');
      } finally {
        await s.stop();
      }
    });

    for (const kind of ['streamable-http', 'sse'] as const) {
      it(`a server dying mid-call over ${kind} fails the call promptly as unreachable`, async () => {
        const s = await startTestMcpServer({ name: 'dying' });
        try {
          const started = Date.now();
          const call = callTool({ url: kind === 'sse' ? s.sseUrl : s.url, transport: kind }, 'slow', { ms: 10_000 }, {
            timeoutMs: 20_000,
          });
          await eventually(() => s.inFlight() === 1);
          await s.stop();
          const e = await rejectsWith(call, McpUnreachableError);
          assert.equal(e.message, 'connection lost');
          assert.equal(isPermanentMcpError(e), false);
          assert.ok(Date.now() - started < 3000, `took ${Date.now() - started} ms`);
        } finally {
          await s.stop();
        }
      });
    }

    it("mode 'down' answers 503: McpHttpError, transient", async () => {
      both.mode = 'down';
      for (const endpoint of [
        { url: both.url, transport: 'auto' as const },
        { url: both.sseUrl, transport: 'sse' as const },
      ]) {
        const e = await rejectsWith(callTool(endpoint, 'echo', { text: 'x' }, { timeoutMs: 5000 }), McpHttpError);
        assert.equal(e.status, 503);
        assert.equal(isPermanentMcpError(e), false);
      }
      assert.deepEqual(await probeReason({ url: both.url, transport: 'auto' }), 'HTTP 503');
      assert.deepEqual(await probeReason({ url: both.url, transport: 'auto' }, '/health'), 'HTTP 503');
    });

    it("mode 'fail-calls': probe healthy, tools/list works, tools/call fails transiently", async () => {
      both.mode = 'fail-calls';
      for (const endpoint of [
        { url: both.url, transport: 'auto' as const },
        { url: both.sseUrl, transport: 'sse' as const },
      ]) {
        const probe = await probeEndpoint(endpoint, { timeoutMs: 2000 });
        assert.equal(probe.healthy, true, probe.reason);
        assert.equal((await listTools(endpoint, { timeoutMs: 5000 })).length, TOOL_NAMES.length);
        const e = await rejectsWith(callTool(endpoint, 'echo', { text: 'x' }, { timeoutMs: 5000 }), McpHttpError);
        assert.equal(e.status, 503);
        assert.equal(isPermanentMcpError(e), false);
      }
      assert.equal(both.callCount(), 0);
    });

    it('failNextCalls fails that many calls, then recovers', async () => {
      both.failNextCalls = 2;
      const endpoint: McpEndpoint = { url: both.url, transport: 'auto' };
      await rejectsWith(callTool(endpoint, 'echo', { text: 'a' }, { timeoutMs: 5000 }), McpHttpError);
      await rejectsWith(callTool(endpoint, 'echo', { text: 'b' }, { timeoutMs: 5000 }), McpHttpError);
      const result = await callTool(endpoint, 'echo', { text: 'c' }, { timeoutMs: 5000 });
      assert.equal(textOf(result.content), 'c');
      assert.equal(both.failNextCalls, 0);
      assert.equal(both.callCount('echo'), 1);
    });

    describe('a server that accepts connections and never answers', () => {
      let silent: Server;
      let url: string;
      const sockets = new Set<Socket>();
      before(async () => {
        silent = createServer((s) => {
          sockets.add(s);
          s.on('close', () => sockets.delete(s));
        });
        await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
        const addr = silent.address();
        assert.ok(addr && typeof addr === 'object');
        url = `http://127.0.0.1:${addr.port}/mcp`;
      });
      after(async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => silent.close(() => r()));
      });

      it('times out connecting (callTool, connectMcp with sse) and probing', async () => {
        const started = Date.now();
        await rejectsWith(callTool({ url, transport: 'auto' }, 'echo', { text: 'x' }, { timeoutMs: 300 }), McpTimeoutError);
        await rejectsWith(connectMcp({ url, transport: 'sse' }, { timeoutMs: 300 }), McpTimeoutError);
        assert.equal(await probeReason({ url, transport: 'auto' }, undefined, 300), 'timed out after 300 ms');
        assert.equal(await probeReason({ url, transport: 'auto' }, '/health', 300), 'timed out after 300 ms');
        assert.ok(Date.now() - started < 3000);
      });
    });
  });

  describe('probeEndpoint', () => {
    it('is healthy via an MCP handshake over either transport', async () => {
      for (const endpoint of [
        { url: both.url, transport: 'auto' as const },
        { url: sseOnly.sseUrl, transport: 'auto' as const },
        { url: both.sseUrl, transport: 'sse' as const },
      ]) {
        const probe = await probeEndpoint(endpoint, { timeoutMs: 2000 });
        assert.equal(probe.healthy, true, probe.reason);
        assert.equal(probe.reason, undefined);
        assert.ok(probe.latencyMs >= 0 && probe.latencyMs < 2000);
      }
    });

    it('uses healthPath against the endpoint origin', async () => {
      const probe = await probeEndpoint({ url: both.url, transport: 'auto' }, { healthPath: '/health', timeoutMs: 2000 });
      assert.equal(probe.healthy, true);
      assert.equal(await probeReason({ url: both.url, transport: 'auto' }, '/missing'), 'HTTP 404');
    });
  });

  describe('bearer tokens', () => {
    let privateSpace: TestMcpServer;
    before(async () => {
      privateSpace = await startTestMcpServer({ name: 'space', requireBearer: 's3cret' });
    });
    after(async () => {
      await privateSpace.stop();
    });

    it('works with the Authorization header on both transports and sends it everywhere', async () => {
      const headers = { Authorization: 'Bearer s3cret' };
      for (const endpoint of [
        { url: privateSpace.url, transport: 'auto' as const, headers },
        { url: privateSpace.sseUrl, transport: 'sse' as const, headers },
      ]) {
        const result = await callTool(endpoint, 'whoami', {}, { timeoutMs: 5000 });
        assert.equal(textOf(result.content), 'space');
        assert.equal((await probeEndpoint(endpoint, { timeoutMs: 2000, healthPath: '/health' })).healthy, true);
      }
      const seen = privateSpace.seenAuthorization();
      assert.ok(seen.length >= 6);
      assert.ok(seen.every((h) => h === 'Bearer s3cret'));
    });

    it('without the header: McpHttpError 401, permanent, and no token leaks into reasons', async () => {
      for (const endpoint of [
        { url: privateSpace.url, transport: 'auto' as const },
        { url: privateSpace.sseUrl, transport: 'sse' as const },
      ]) {
        const e = await rejectsWith(callTool(endpoint, 'whoami', {}, { timeoutMs: 5000 }), McpHttpError);
        assert.equal(e.status, 401);
        assert.equal(isPermanentMcpError(e), true);
      }
      const wrong = { url: privateSpace.url, transport: 'auto' as const, headers: { Authorization: 'Bearer wrong-token' } };
      const probe = await probeEndpoint(wrong, { timeoutMs: 2000 });
      assert.equal(probe.healthy, false);
      assert.equal(probe.reason, 'HTTP 401');
      const e = await rejectsWith(listTools(wrong, { timeoutMs: 5000 }), McpHttpError);
      assert.doesNotMatch(`${e.message} ${e.stack ?? ''}`, /wrong-token/);
    });
  });
});

async function probeReason(endpoint: McpEndpoint, healthPath?: string, timeoutMs = 2000): Promise<string | undefined> {
  const probe = await probeEndpoint(endpoint, { timeoutMs, ...(healthPath !== undefined ? { healthPath } : {}) });
  assert.equal(probe.healthy, false);
  return probe.reason;
}

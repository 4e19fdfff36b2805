import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import type { ServerNotification, ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';

type ToolExtra = RequestHandlerExtra<ServerRequest, ServerNotification>;

export type TestMcpTransport = 'streamable-http' | 'sse-only' | 'both';

export interface TestMcpServerOptions {
  name?: string;
  port?: number;
  transport?: TestMcpTransport;
  requireBearer?: string;
  /**
   * Where the Streamable HTTP endpoint lives (default '/mcp', with legacy SSE at '/sse' and POSTs to '/messages').
   * Any other base puts legacy SSE under it, like Gradio: '/gradio_api/mcp/' serves Streamable HTTP there,
   * the SSE stream at '/gradio_api/mcp/sse' and its POSTs at '/gradio_api/mcp/messages/'.
   */
  basePath?: string;
  /** Every tool is registered as `${toolPrefix}${name}` (Gradio prefixes tool names with the Space name). */
  toolPrefix?: string;
  /**
   * Called first on every request; a returned answer is sent instead of handling the request
   * (a Space's stage shapes what its host answers).
   */
  gate?: (req: IncomingMessage) => undefined | TestMcpGateAnswer;
  /**
   * Streamable HTTP with sessions (`Mcp-Session-Id`) instead of stateless: a request naming a session the server
   * does not know (e.g. after `stop()`/`restart()`) gets 404, as the spec says.
   */
  stateful?: boolean;
  /**
   * Decides on every request's Authorization header (undefined when absent); false answers 401 with a Bearer
   * challenge, as a server acting as its caller does. `requireBearer` is the fixed-token form of this.
   */
  authorize?: (authorization: string | undefined) => boolean;
  /**
   * Adds the tool `github_login`: it calls `GET {githubApiUrl}/user` with the Authorization header its own request
   * carried and answers the login GitHub names (a server acting as the user on GitHub).
   */
  githubApiUrl?: string;
}

export interface TestMcpGateAnswer {
  status: number;
  body: string;
  headers?: Record<string, string>;
}

export interface TestMcpServer {
  /** Streamable HTTP endpoint (in 'sse-only' mode a GET here opens a legacy SSE stream instead). */
  url: string;
  /** Legacy HTTP+SSE endpoint (GET opens the stream, POSTs go to /messages). */
  sseUrl: string;
  origin: string;
  port: number;
  /** 'down': every request gets 503. 'fail-calls': tools/call requests get 503, everything else works. */
  mode: 'up' | 'down' | 'fail-calls';
  /** Fail this many upcoming tools/call requests with 503, then recover. */
  failNextCalls: number;
  /** Tool executions (requests rejected before reaching a tool are not counted); `tool` with or without the prefix. */
  callCount(tool?: string): number;
  /** The prefix every tool name carries ('' by default). */
  toolPrefix: string;
  inFlight(): number;
  maxInFlight(): number;
  resetStats(): void;
  /** Requests answered 503 because of `mode` or `failNextCalls` (each probe or call attempt that hit a failure). */
  rejectedCount(): number;
  /** Every Authorization header received, in order. */
  seenAuthorization(): string[];
  /** Every request's headers (names lower-case), in order, requests of any kind. */
  seenHeaders(): Array<Record<string, string>>;
  /** Legacy SSE streams currently open (a client that closed properly leaves none). */
  openSseStreams(): number;
  /** `initialize` requests received (one per MCP session a client opened). */
  initializeCount(): number;
  /** HTTP requests received, of any kind. */
  requestCount(): number;
  /** The `_meta` of every `tools/call` received, in order (progressToken included). */
  seenCallMeta(): Array<Record<string, unknown> | undefined>;
  stop(): Promise<void>;
  /** Listen again on the same port. */
  restart(): Promise<void>;
}

const PATTERN = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** The exact text the `large` tool returns for `bytes`, for comparisons in tests. */
export function largeText(bytes: number): string {
  return PATTERN.repeat(Math.ceil(bytes / PATTERN.length)).slice(0, bytes);
}

interface Stats {
  calls: Map<string, number>;
  inFlight: number;
  maxInFlight: number;
  authorization: string[];
  rejected: number;
  initialize: number;
  requests: number;
  callMeta: Array<Record<string, unknown> | undefined>;
  headers: Array<Record<string, string>>;
}

export async function startTestMcpServer(opts: TestMcpServerOptions = {}): Promise<TestMcpServer> {
  const name = opts.name ?? 'test-mcp';
  const transport = opts.transport ?? 'both';
  const toolPrefix = opts.toolPrefix ?? '';
  const paths = endpointPaths(opts.basePath ?? '/mcp');
  const stats: Stats = { calls: new Map(), inFlight: 0, maxInFlight: 0, authorization: [], rejected: 0, initialize: 0, requests: 0, callMeta: [], headers: [] };
  const streamableSessions = new Map<string, StreamableHTTPServerTransport>();
  const sseSessions = new Map<string, SSEServerTransport>();
  const sockets = new Set<Socket>();

  const state: TestMcpServer = {
    url: '',
    sseUrl: '',
    origin: '',
    port: opts.port ?? 0,
    mode: 'up',
    failNextCalls: 0,
    toolPrefix,
    callCount: (tool) => {
      if (tool === undefined) return [...stats.calls.values()].reduce((a, b) => a + b, 0);
      const bare = toolPrefix !== '' && tool.startsWith(toolPrefix) && !stats.calls.has(tool) ? tool.slice(toolPrefix.length) : tool;
      return stats.calls.get(bare) ?? 0;
    },
    inFlight: () => stats.inFlight,
    maxInFlight: () => stats.maxInFlight,
    resetStats: () => {
      stats.calls.clear();
      stats.maxInFlight = stats.inFlight;
      stats.authorization.length = 0;
      stats.rejected = 0;
      stats.initialize = 0;
      stats.requests = 0;
      stats.callMeta.length = 0;
      stats.headers.length = 0;
    },
    rejectedCount: () => stats.rejected,
    seenAuthorization: () => [...stats.authorization],
    seenHeaders: () => stats.headers.map((h) => ({ ...h })),
    openSseStreams: () => sseSessions.size,
    initializeCount: () => stats.initialize,
    requestCount: () => stats.requests,
    seenCallMeta: () => [...stats.callMeta],
    stop: async () => {
      for (const t of sseSessions.values()) await t.close().catch(() => {});
      sseSessions.clear();
      for (const t of streamableSessions.values()) await t.close().catch(() => {});
      streamableSessions.clear();
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
    restart: async () => {
      await listen(http, state.port);
    },
  };

  const observe = (body: unknown): void => {
    for (const m of Array.isArray(body) ? body : [body]) {
      if (m === null || typeof m !== 'object') continue;
      const { method, params } = m as { method?: unknown; params?: { _meta?: Record<string, unknown> } };
      if (method === 'initialize') stats.initialize++;
      if (method === 'tools/call') stats.callMeta.push(params?._meta);
    }
  };

  const shouldFailCall = (body: unknown): boolean => {
    if (!isToolsCall(body)) return false;
    if (state.mode === 'fail-calls') return true;
    if (state.failNextCalls > 0) {
      state.failNextCalls--;
      return true;
    }
    return false;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    stats.requests++;
    const auth = req.headers.authorization;
    if (auth !== undefined) stats.authorization.push(auth);
    stats.headers.push(Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : (v ?? '')])));
    const gated = opts.gate?.(req);
    if (gated !== undefined) {
      // Drain the body so the connection can be reused, then answer for the gate.
      req.resume();
      res
        .writeHead(gated.status, { 'content-type': 'text/plain', connection: 'close', ...gated.headers })
        .end(gated.body);
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const sessionId = new URL(req.url ?? '/', 'http://localhost').searchParams.get('sessionId');

    if (state.mode === 'down') {
      stats.rejected++;
      return plain(res, 503, 'service unavailable');
    }
    if (opts.requireBearer !== undefined && auth !== `Bearer ${opts.requireBearer}`) {
      return plain(res, 401, 'unauthorized');
    }
    if (opts.authorize && !opts.authorize(auth)) {
      res.writeHead(401, { 'content-type': 'text/plain', 'www-authenticate': 'Bearer', connection: 'close' }).end('unauthorized');
      return;
    }
    if (path === '/health' && req.method === 'GET') return plain(res, 200, 'ok');

    const legacy = transport !== 'streamable-http';
    const streamable = transport !== 'sse-only';

    if (paths.streamable.includes(path) && streamable && opts.stateful) {
      // No standalone stream for server-initiated messages: a session lives only in the server's memory.
      if (req.method === 'GET') return plain(res, 405, 'method not allowed');
      const id = req.headers['mcp-session-id'];
      const known = typeof id === 'string' ? streamableSessions.get(id) : undefined;
      if (typeof id === 'string' && !known) return plain(res, 404, 'unknown session');
      const body = req.method === 'POST' ? await readJson(req) : undefined;
      if (req.method === 'POST') {
        if (body === undefined) return plain(res, 400, 'invalid JSON');
        observe(body);
        if (shouldFailCall(body)) {
          stats.rejected++;
          return plain(res, 503, 'tools/call unavailable');
        }
      }
      if (known) return known.handleRequest(req, res, body);
      const server = buildServer(name, stats, toolPrefix, opts.githubApiUrl);
      const t: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (sid) => void streamableSessions.set(sid, t),
      });
      t.onclose = () => {
        if (t.sessionId) streamableSessions.delete(t.sessionId);
        void server.close();
      };
      await server.connect(t);
      await t.handleRequest(req, res, body);
      return;
    }

    if (paths.streamable.includes(path) && streamable) {
      // Stateless server: nothing to stream outside a POST, no session to delete.
      if (req.method !== 'POST') return plain(res, 405, 'method not allowed');
      const body = await readJson(req);
      if (body === undefined) return plain(res, 400, 'invalid JSON');
      observe(body);
      if (shouldFailCall(body)) {
        stats.rejected++;
        return plain(res, 503, 'tools/call unavailable');
      }
      const server = buildServer(name, stats, toolPrefix, opts.githubApiUrl);
      const t = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      // The client going away (abort, close) must abort the running tool handler.
      res.on('close', () => {
        void t.close();
        void server.close();
      });
      await server.connect(t);
      await t.handleRequest(req, res, body);
      return;
    }

    // A plain legacy server also streams at its main URL; Gradio serves legacy SSE only at <base>/sse.
    const legacyAtMain = (opts.basePath ?? '/mcp') === '/mcp';
    if ((path === paths.sse || (legacyAtMain && paths.streamable.includes(path))) && legacy) {
      if (req.method !== 'GET') return plain(res, 405, 'method not allowed');
      const server = buildServer(name, stats, toolPrefix, opts.githubApiUrl);
      const t = new SSEServerTransport(paths.messages, res);
      sseSessions.set(t.sessionId, t);
      res.on('close', () => {
        sseSessions.delete(t.sessionId);
        void server.close();
      });
      await server.connect(t);
      return;
    }

    if (path === paths.messages && legacy && req.method === 'POST') {
      const t = sessionId ? sseSessions.get(sessionId) : undefined;
      if (!t) return plain(res, 404, 'unknown session');
      const body = await readJson(req);
      if (body === undefined) return plain(res, 400, 'invalid JSON');
      observe(body);
      if (shouldFailCall(body)) {
        stats.rejected++;
        return plain(res, 503, 'tools/call unavailable');
      }
      await t.handlePostMessage(req, res, body);
      return;
    }

    return plain(res, 404, 'not found');
  };

  const http = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) plain(res, 500, 'internal error');
      else res.destroy();
    });
  });
  http.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await listen(http, state.port);
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('test MCP server has no TCP address');
  state.port = address.port;
  state.origin = `http://127.0.0.1:${address.port}`;
  state.url = `${state.origin}${paths.streamable[0]}`;
  state.sseUrl = `${state.origin}${paths.sse}`;
  return state;
}

interface EndpointPaths {
  /** The first is the advertised one; a base with a trailing slash also answers without it. */
  streamable: string[];
  sse: string;
  messages: string;
}

function endpointPaths(basePath: string): EndpointPaths {
  const base = basePath.startsWith('/') ? basePath : `/${basePath}`;
  if (base === '/mcp') return { streamable: ['/mcp'], sse: '/sse', messages: '/messages' };
  const trimmed = base.replace(/\/+$/, '');
  return {
    streamable: trimmed === '' ? ['/'] : base === trimmed ? [base] : [base, trimmed],
    sse: `${trimmed}/sse`,
    messages: `${trimmed}/messages/`,
  };
}

function buildServer(name: string, stats: Stats, prefix: string, githubApiUrl?: string): McpServer {
  const server = new McpServer({ name, version: '1.0.0' });
  const registerTool: McpServer['registerTool'] = (toolName, config, cb) => server.registerTool(`${prefix}${toolName}`, config, cb);

  const counted = <A, R>(tool: string, fn: (args: A, extra: ToolExtra) => Promise<R>) => {
    return async (args: A, extra: ToolExtra): Promise<R> => {
      stats.calls.set(tool, (stats.calls.get(tool) ?? 0) + 1);
      stats.inFlight++;
      stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
      try {
        return await fn(args, extra);
      } finally {
        stats.inFlight--;
      }
    };
  };

  registerTool(
    'echo',
    { description: 'Echoes text back', inputSchema: { text: z.string() } },
    counted('echo', async ({ text }: { text: string }) => ({ content: [{ type: 'text' as const, text }] })),
  );

  registerTool(
    'slow',
    {
      description: 'Sleeps ms milliseconds, reporting progress in steps',
      inputSchema: { ms: z.number().int().min(0), steps: z.number().int().min(1).optional() },
    },
    counted('slow', async ({ ms, steps }: { ms: number; steps?: number }, extra) => {
      const n = steps ?? 1;
      const token = extra._meta?.progressToken;
      const started = Date.now();
      for (let i = 1; i <= n; i++) {
        await sleep(ms / n, undefined, { signal: extra.signal });
        if (token !== undefined) {
          await extra.sendNotification({
            method: 'notifications/progress',
            params: { progressToken: token, progress: i, total: n, message: `step ${i}` },
          });
        }
      }
      return { content: [{ type: 'text' as const, text: `done after ${Date.now() - started} ms` }] };
    }),
  );

  registerTool(
    'large',
    { description: 'Returns a text of exactly `bytes` characters', inputSchema: { bytes: z.number().int().min(0) } },
    counted('large', async ({ bytes }: { bytes: number }) => ({
      content: [{ type: 'text' as const, text: largeText(bytes) }],
    })),
  );

  registerTool(
    'fail',
    { description: 'Always reports a tool error', inputSchema: { message: z.string() } },
    counted('fail', async ({ message }: { message: string }) => ({
      content: [{ type: 'text' as const, text: message }],
      isError: true,
    })),
  );

  registerTool(
    'whoami',
    { description: "Returns this server's name", inputSchema: {} },
    counted('whoami', async () => ({ content: [{ type: 'text' as const, text: name }] })),
  );

  if (githubApiUrl !== undefined) {
    registerTool(
      'github_login',
      { description: 'Asks GitHub who the caller is, with the credentials the call came with', inputSchema: {} },
      counted('github_login', async (_args: Record<string, never>, extra) => {
        const authorization = extra.requestInfo?.headers.authorization;
        const res = await fetch(`${githubApiUrl}/user`, { headers: typeof authorization === 'string' ? { Authorization: authorization } : {} });
        if (!res.ok) return { content: [{ type: 'text' as const, text: `GitHub answered ${res.status}` }], isError: true };
        const user = (await res.json()) as { login: string };
        return { content: [{ type: 'text' as const, text: user.login }] };
      }),
    );
  }

  return server;
}

function isToolsCall(body: unknown): boolean {
  const messages = Array.isArray(body) ? body : [body];
  return messages.some((m) => m !== null && typeof m === 'object' && (m as { method?: unknown }).method === 'tools/call');
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function plain(res: ServerResponse, status: number, text: string): void {
  res.writeHead(status, { 'content-type': 'text/plain', connection: 'close' }).end(text);
}

function listen(server: Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

import { AsyncLocalStorage } from 'node:async_hooks';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import type { FetchLike, Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { McpAbortedError, McpClientError, McpTimeoutError, McpUnreachableError, toMcpClientError } from './errors.ts';

export type McpTransportKind = 'auto' | 'streamable-http' | 'sse';

export interface McpEndpoint {
  url: string;
  transport: McpTransportKind;
  /** e.g. `Authorization: Bearer <space token>`: never logged, never put into error messages. */
  headers?: Record<string, string>;
  /** Where the legacy SSE transport lives when not at `url` (a Gradio Space: `/gradio_api/mcp/sse`). */
  sseUrl?: string;
  /**
   * Every request of the connection goes through it (the legacy transport's event stream too). Registered and
   * bound URLs get the outbound guard's fetch, which refuses internal addresses; the global fetch otherwise.
   */
  fetch?: FetchLike;
}

export interface McpConnection {
  client: Client;
  transportUsed: 'streamable-http' | 'sse';
  /** Set once the connection can no longer deliver responses (the stream carrying them broke, or closed). */
  lost: Promise<never>;
  /** False once `lost` has fired or `close()` was called: a pool must not hand the connection out again. */
  isOpen(): boolean;
  /**
   * Runs `start` (which issues one request; its HTTP requests are aborted with `signal`) and tells how handing that request to the server went: `sent` settles
   * with undefined once it was accepted, or with the error that kept it from being sent. When the connection is lost
   * mid-call this tells "never reached the server" (safe to retry) from "may be running" (not).
   */
  sending<T>(start: () => T, signal?: AbortSignal): { value: T; sent: Promise<unknown> };
  /**
   * Server notifications, delivered synchronously in arrival order. The SDK's own progress callback runs
   * a microtask late, after a response in the same chunk has already removed it, so the last progress
   * updates of a call can go missing there. Returns a function that removes the listener.
   */
  onNotification(listener: (method: string, params: Record<string, unknown>) => void): () => void;
  close(): Promise<void>;
}

export interface Deadline {
  /** Aborts with a domain error as reason: McpAbortedError (caller) or McpTimeoutError (time is up). */
  signal: AbortSignal;
  remainingMs(): number;
  dispose(): void;
}

const CLIENT_VERSION = '0.1.0';

/**
 * The signal of the call whose request is being sent. Calls share a session, so aborting one must abort its own HTTP
 * request only: a stateless server stops a tool when its request goes away (it never sees `notifications/cancelled`,
 * which arrives as another request).
 */
const callSignal = new AsyncLocalStorage<AbortSignal>();

/** One timer and the caller's signal folded into a single signal whose reason says which one fired. */
export function startDeadline(timeoutMs: number, signal?: AbortSignal): Deadline {
  const controller = new AbortController();
  const endsAt = Date.now() + timeoutMs;
  const onCallerAbort = () => {
    const reason: unknown = signal?.reason;
    controller.abort(reason instanceof McpClientError ? reason : new McpAbortedError());
  };
  const timer = setTimeout(() => controller.abort(new McpTimeoutError(timeoutMs)), timeoutMs);
  if (signal?.aborted) onCallerAbort();
  else signal?.addEventListener('abort', onCallerAbort, { once: true });
  return {
    signal: controller.signal,
    remainingMs: () => Math.max(1, endsAt - Date.now()),
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onCallerAbort);
    },
  };
}

/** Settles like `work`, unless `signal` aborts first (then rejects with its reason). */
export function raceAbort<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    work.catch(() => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

export async function connectMcp(
  endpoint: McpEndpoint,
  opts: { signal?: AbortSignal; timeoutMs: number; clientName?: string },
): Promise<McpConnection> {
  const deadline = startDeadline(opts.timeoutMs, opts.signal);
  try {
    return await connectWithin(endpoint, deadline, opts.clientName ?? 'orchestrator');
  } catch (e) {
    throw toMcpClientError(e, { signal: deadline.signal, timeoutMs: opts.timeoutMs });
  } finally {
    deadline.dispose();
  }
}

async function connectWithin(endpoint: McpEndpoint, deadline: Deadline, clientName: string): Promise<McpConnection> {
  const url = new URL(endpoint.url);
  const sseUrl = new URL(endpoint.sseUrl ?? endpoint.url);
  if (endpoint.transport === 'sse') return attempt('sse', sseUrl, endpoint, deadline, clientName);
  if (endpoint.transport === 'streamable-http') {
    return attempt('streamable-http', url, endpoint, deadline, clientName);
  }
  try {
    return await attempt('streamable-http', url, endpoint, deadline, clientName);
  } catch (first) {
    if (deadline.signal.aborted || !speaksOnlyLegacySse(first)) throw first;
    try {
      return await attempt('sse', sseUrl, endpoint, deadline, clientName);
    } catch (second) {
      // When neither transport exists at this URL, the Streamable HTTP answer is the one worth reporting.
      if (second instanceof SseError && (second.code === 404 || second.code === 405)) throw first;
      throw second;
    }
  }
}

/**
 * Backwards compatibility as the MCP spec describes it: a 4xx to the initialize POST means the server
 * may be a legacy HTTP+SSE one. Auth and rate-limit answers are real answers, not a transport mismatch.
 */
function speaksOnlyLegacySse(e: unknown): boolean {
  if (!(e instanceof StreamableHTTPError)) return false;
  const status = e.code ?? 0;
  if (status === -1) return true;
  return status >= 400 && status < 500 && ![401, 403, 408, 429].includes(status);
}

async function attempt(
  kind: 'streamable-http' | 'sse',
  url: URL,
  endpoint: McpEndpoint,
  deadline: Deadline,
  clientName: string,
): Promise<McpConnection> {
  const requestInit: RequestInit = endpoint.headers ? { headers: { ...endpoint.headers } } : {};
  const baseFetch: FetchLike = endpoint.fetch ?? globalThis.fetch;
  const fetch = {
    fetch: ((input, init) => {
      const signal = callSignal.getStore();
      // Already aborted: this is the SDK sending the call's `notifications/cancelled`, which must still go out.
      if (!signal || signal.aborted) return baseFetch(input, init);
      return baseFetch(input, { ...init, signal: init?.signal ? AbortSignal.any([init.signal, signal]) : signal });
    }) satisfies FetchLike,
  };
  let lose: (e: unknown) => void = () => {};
  const lost = new Promise<never>((_, reject) => {
    lose = reject;
  });
  lost.catch(() => {});

  let transport: Transport;
  if (kind === 'sse') {
    transport = new SSEClientTransport(url, { requestInit, ...fetch });
  } else {
    transport = new StreamableHTTPClientTransport(url, {
      requestInit,
      ...fetch,
      // A dropped response stream is reported, not resumed: the call fails and the activity's retry decides.
      reconnectionOptions: { maxRetries: 0, initialReconnectionDelay: 1000, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1 },
    });
  }
  const listeners: Array<(method: string, params: Record<string, unknown>) => void> = [];
  // Protocol.connect keeps a handler that is already set and calls it before its own dispatch.
  transport.onmessage = (message) => {
    if (listeners.length === 0 || !('method' in message) || 'id' in message) return;
    const params = (message.params ?? {}) as Record<string, unknown>;
    for (const listener of [...listeners]) listener(message.method, params);
  };
  // Protocol.request hands its message to transport.send synchronously; `sending` catches that send for one request.
  let capture: ((sent: Promise<void>) => void) | undefined;
  const send = transport.send.bind(transport);
  transport.send = (message, options) => {
    const sent = send(message, options);
    if (capture && 'method' in message && 'id' in message) {
      capture(sent);
      capture = undefined;
    }
    return sent;
  };
  const client = new Client({ name: clientName, version: CLIENT_VERSION }, { capabilities: {} });
  let closed = false;
  let broken = false;
  const breakWith = (e: McpUnreachableError) => {
    if (closed || broken) return;
    broken = true;
    lose(e);
  };
  client.onerror = (e) => {
    if (breaksResponseStream(kind, e)) breakWith(new McpUnreachableError('connection lost'));
  };
  // The legacy stream ending cleanly (server restart) closes the transport: nothing more can arrive on it.
  client.onclose = () => breakWith(new McpUnreachableError('connection closed'));
  // The legacy SSE transport's start() waits for the `endpoint` event with no timeout of its own.
  const closeOnAbort = () => void transport.close().catch(() => {});
  deadline.signal.addEventListener('abort', closeOnAbort, { once: true });
  const close = async () => {
    if (closed) return;
    closed = true;
    await client.close().catch(() => {});
    await transport.close().catch(() => {});
  };
  try {
    await raceAbort(client.connect(transport, { signal: deadline.signal, timeout: deadline.remainingMs() }), deadline.signal);
  } catch (e) {
    await close();
    throw e;
  } finally {
    deadline.signal.removeEventListener('abort', closeOnAbort);
  }
  return {
    client,
    transportUsed: kind,
    lost,
    close,
    isOpen: () => !closed && !broken,
    sending: <T>(start: () => T, signal?: AbortSignal) => {
      let sent: Promise<void> = Promise.resolve();
      capture = (p) => {
        sent = p;
      };
      try {
        const value = signal ? callSignal.run(signal, start) : start();
        return { value, sent: sent.then(() => undefined, (e: unknown) => e) };
      } finally {
        capture = undefined;
      }
    },
    onNotification: (l) => {
      listeners.push(l);
      return () => {
        const i = listeners.indexOf(l);
        if (i >= 0) listeners.splice(i, 1);
      };
    },
  };
}

/**
 * Errors after which a pending response can never arrive. Legacy SSE: the GET stream carries every
 * response, so its loss is fatal. Streamable HTTP: a POST response stream cut before its answer
 * (reconnection is off, see above).
 */
function breaksResponseStream(kind: 'streamable-http' | 'sse', e: Error): boolean {
  if (kind === 'sse') return e instanceof SseError;
  // A call aborted by its own deadline signal (reason McpAbortedError or McpTimeoutError, see startDeadline) cuts only
  // its own stream; the calls sharing the session go on.
  return /^SSE stream disconnected/.test(e.message) && !/^SSE stream disconnected: (AbortError|McpAbortedError|McpTimeoutError)\b/.test(e.message);
}

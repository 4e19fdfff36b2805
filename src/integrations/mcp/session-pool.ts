import { createHash } from 'node:crypto';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { connectMcp, raceAbort } from './connect.ts';
import type { McpConnection, McpEndpoint } from './connect.ts';
import { McpClientError, McpUnreachableError, toMcpClientError } from './errors.ts';

/**
 * Initialized MCP sessions kept per endpoint and reused across calls, so a task costs one `tools/call` instead of
 * initialize + initialized + call. A session is keyed by URL, transport, legacy SSE URL, outbound fetch and a hash of
 * the headers: a Space's token never serves another Space or project.
 */
export interface McpSessionPool {
  /**
   * Runs `work` on a session for `endpoint`. When the session was a reused one and `work` failed before its request
   * reached the server (the session had died unseen), it is retried once on a fresh session; any other failure is
   * the caller's, so a tool is never run twice by the pool.
   */
  run<T>(endpoint: McpEndpoint, opts: { signal: AbortSignal; timeoutMs: number }, work: (conn: McpConnection) => Promise<T>): Promise<T>;
  stats(): McpSessionPoolStats;
  /** Closes every session; later `run` calls fall back to one-off connections. */
  close(): Promise<void>;
}

export interface McpSessionPoolStats {
  sessions: number;
  keys: number;
  /** Sessions opened (initialize handshakes) since the pool was built. */
  opened: number;
  /** Runs served by a session that was already open. */
  reused: number;
  /** Runs retried on a fresh session because the reused one had died before the request left. */
  retried: number;
}

export interface McpSessionPoolOptions {
  /** Sessions per key; calls beyond `maxCallsPerSession` on each of them share the least busy one. */
  maxPerKey: number;
  /** Sessions overall; when full, idle sessions of other keys are closed first, then calls go unpooled. */
  maxTotal: number;
  /** Concurrent calls one session takes before another session for the same key is opened. */
  maxCallsPerSession: number;
  /** An unused session is closed after this long (servers expire sessions too; an old one is likely dead). */
  idleMs: number;
  /** Bound on one handshake, shared by every caller waiting on it (each caller still has its own deadline). */
  connectTimeoutMs: number;
  clientName?: string;
}

interface Session {
  key: string;
  ready: Promise<McpConnection>;
  conn?: McpConnection;
  inFlight: number;
  /** No new calls: it broke, or a call on it failed in a way that says the connection is bad. */
  retired: boolean;
  idleTimer?: NodeJS.Timeout;
}

interface Lease {
  conn: McpConnection;
  /** The session existed before this run: it may have died since its last use. */
  reused: boolean;
  release(outcome: 'ok' | 'broken'): void;
}

const fetchIds = new WeakMap<object, number>();
let nextFetchId = 1;

export function sessionKey(endpoint: McpEndpoint): string {
  const headers = Object.entries(endpoint.headers ?? {})
    .map(([k, v]) => [k.toLowerCase(), v])
    .sort(([a], [b]) => (a! < b! ? -1 : a! > b! ? 1 : 0));
  const headerHash = createHash('sha256').update(JSON.stringify(headers)).digest('base64url');
  let fetchId = 0;
  if (endpoint.fetch) {
    fetchId = fetchIds.get(endpoint.fetch) ?? nextFetchId++;
    fetchIds.set(endpoint.fetch, fetchId);
  }
  return JSON.stringify([endpoint.url, endpoint.transport, endpoint.sseUrl ?? '', fetchId, headerHash]);
}

export function createMcpSessionPool(options: McpSessionPoolOptions): McpSessionPool {
  const byKey = new Map<string, Session[]>();
  let total = 0;
  let closed = false;
  const counters = { opened: 0, reused: 0, retried: 0 };

  const remove = (s: Session) => {
    const list = byKey.get(s.key);
    const i = list?.indexOf(s) ?? -1;
    if (list && i >= 0) {
      list.splice(i, 1);
      total--;
      if (list.length === 0) byKey.delete(s.key);
    }
    if (s.idleTimer) clearTimeout(s.idleTimer);
  };
  const retire = (s: Session) => {
    s.retired = true;
    remove(s);
    if (s.inFlight === 0) void s.conn?.close();
  };

  const open = (key: string, endpoint: McpEndpoint, pooled: boolean): Session => {
    const s: Session = { key, inFlight: 0, retired: false, ready: undefined as unknown as Promise<McpConnection> };
    s.ready = connectMcp(endpoint, { timeoutMs: options.connectTimeoutMs, clientName: options.clientName }).then(
      (conn) => {
        s.conn = conn;
        counters.opened++;
        conn.lost.catch(() => retire(s));
        if (pooled && (s.retired || closed)) void conn.close();
        return conn;
      },
      (err: unknown) => {
        retire(s);
        throw err;
      },
    );
    s.ready.catch(() => {});
    return s;
  };

  /** Frees one place under the overall bound by closing an idle session of any key. */
  const evictIdle = (): boolean => {
    for (const list of byKey.values()) {
      const idle = list.find((s) => s.inFlight === 0 && s.conn !== undefined);
      if (idle) {
        retire(idle);
        return true;
      }
    }
    return false;
  };

  const lease = (s: Session, conn: McpConnection, reused: boolean, pooled: boolean): Lease => {
    let released = false;
    return {
      conn,
      reused,
      release: (outcome) => {
        if (released) return;
        released = true;
        s.inFlight--;
        if (!pooled) return void conn.close();
        if (outcome === 'broken' || !conn.isOpen()) s.retired = true;
        if (s.retired || closed) {
          remove(s);
          if (s.inFlight === 0) void conn.close();
          return;
        }
        if (s.inFlight === 0) {
          s.idleTimer = setTimeout(() => {
            if (s.inFlight === 0) retire(s);
          }, options.idleMs);
          s.idleTimer.unref();
        }
      },
    };
  };

  const acquire = async (endpoint: McpEndpoint, signal: AbortSignal, fresh: boolean): Promise<Lease> => {
    const key = sessionKey(endpoint);
    let session: Session | undefined;
    let pooled = true;
    if (!closed) {
      const list = byKey.get(key) ?? [];
      const usable = list.filter((s) => !s.retired && (s.conn === undefined || s.conn.isOpen()));
      const leastBusy = usable.reduce<Session | undefined>((best, s) => (best === undefined || s.inFlight < best.inFlight ? s : best), undefined);
      if (!fresh && leastBusy && leastBusy.inFlight < options.maxCallsPerSession) session = leastBusy;
      else if (list.length < options.maxPerKey && (total < options.maxTotal || evictIdle())) {
        session = open(key, endpoint, true);
        list.push(session);
        byKey.set(key, list);
        total++;
      } else if (!fresh && leastBusy) session = leastBusy;
    }
    if (!session) {
      // Over every bound (or closed): a one-off session for this run only.
      session = open(key, endpoint, false);
      pooled = false;
    }
    const reused = session.conn !== undefined;
    if (session.idleTimer) clearTimeout(session.idleTimer);
    session.inFlight++;
    let conn: McpConnection;
    try {
      conn = await raceAbort(session.ready, signal);
    } catch (err) {
      session.inFlight--;
      if (!pooled && session.conn) void session.conn.close();
      throw err;
    }
    if (reused) counters.reused++;
    return lease(session, conn, reused, pooled);
  };

  return {
    async run(endpoint, opts, work) {
      const first = await acquire(endpoint, opts.signal, false);
      try {
        const result = await work(first.conn);
        first.release('ok');
        return result;
      } catch (err) {
        first.release(breaksSession(err, opts.signal) ? 'broken' : 'ok');
        if (!first.reused || opts.signal.aborted || !neverReachedServer(err)) throw err;
      }
      counters.retried++;
      const second = await acquire(endpoint, opts.signal, true);
      try {
        const result = await work(second.conn);
        second.release('ok');
        return result;
      } catch (err) {
        second.release(breaksSession(err, opts.signal) ? 'broken' : 'ok');
        throw err;
      }
    },
    stats: () => ({ sessions: total, keys: byKey.size, ...counters }),
    async close() {
      closed = true;
      const all = [...byKey.values()].flat();
      byKey.clear();
      total = 0;
      await Promise.all(
        all.map(async (s) => {
          s.retired = true;
          if (s.idleTimer) clearTimeout(s.idleTimer);
          const conn = await s.ready.catch(() => undefined);
          await conn?.close();
        }),
      );
    },
  };
}

/** One connection per run, closed after it: what callers get without a pool. */
export async function runOnce<T>(
  endpoint: McpEndpoint,
  opts: { signal: AbortSignal; timeoutMs: number },
  work: (conn: McpConnection) => Promise<T>,
): Promise<T> {
  const conn = await connectMcp(endpoint, { signal: opts.signal, timeoutMs: opts.timeoutMs });
  try {
    return await work(conn);
  } finally {
    await conn.close();
  }
}

/**
 * The request provably did not reach a server that could act on it: the connection was refused, the transport was
 * already closed, or the server answered 404 to a request on a session it no longer knows (the spec's "start a new
 * session"). A reset or a stream cut after sending is not in this list: the tool may be running.
 */
export function neverReachedServer(err: unknown): boolean {
  if (err instanceof StreamableHTTPError && err.code === 404) return true;
  if (!(err instanceof Error)) return false;
  if (err.message === 'Not connected') return true;
  // The legacy transport's POST to a session the server dropped.
  if (/^Error POSTing to endpoint \(HTTP 404\)/.test(err.message)) return true;
  for (let cur: unknown = err, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    if ((cur as { code?: unknown }).code === 'ECONNREFUSED') return true;
  }
  return false;
}

/** After these, the session is not offered again: the next call opens a new one. */
function breaksSession(err: unknown, signal: AbortSignal): boolean {
  if (neverReachedServer(err)) return true;
  const mapped = err instanceof McpClientError ? err : toMcpClientError(err, { signal, timeoutMs: 0 });
  // A timeout says the tool was slow, not that the session is bad: the SDK cancels the request and the session stays.
  return mapped instanceof McpUnreachableError;
}

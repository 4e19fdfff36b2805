import { raceAbort, startDeadline } from './connect.ts';
import type { McpEndpoint } from './connect.ts';
import { McpAbortedError, McpHttpError, McpTargetNotAllowedError, McpTimeoutError, McpUnreachableError, toMcpClientError } from './errors.ts';
import { runOnce, type McpSessionPool } from './session-pool.ts';

export interface ProbeResult {
  healthy: boolean;
  latencyMs: number;
  reason?: string;
}

/**
 * With `healthPath`: GET it (against the endpoint's origin), 2xx = healthy. Otherwise an MCP handshake:
 * initialize + ping. Never throws; `reason` is one of a few generic phrases (callers show it to users, and
 * "connection refused" versus "timed out" per URL would map a network), never headers or tokens.
 */
export async function probeEndpoint(
  endpoint: McpEndpoint,
  opts: {
    healthPath?: string;
    timeoutMs: number;
    signal?: AbortSignal;
    sessions?: McpSessionPool;
    /**
     * The server wants its caller's credentials, which a probe does not have (it acts as the user, and a probe is no
     * user's call): a 401 or 403 answer says it is up and asking for them, so it counts as healthy.
     */
    authRequired?: boolean;
  },
): Promise<ProbeResult> {
  const started = performance.now();
  const deadline = startDeadline(opts.timeoutMs, opts.signal);
  const latency = () => Math.round(performance.now() - started);
  try {
    if (opts.healthPath !== undefined) {
      const status = await getHealth(endpoint, opts.healthPath, deadline.signal);
      return (status >= 200 && status < 300) || (opts.authRequired && isAuthChallenge(status))
        ? { healthy: true, latencyMs: latency() }
        : { healthy: false, latencyMs: latency(), reason: `HTTP ${status}` };
    }
    // On a pooled session the ping still crosses to the server: a session that died is found out (and replaced) here.
    const run = opts.sessions ? opts.sessions.run.bind(opts.sessions) : runOnce;
    await run(endpoint, { signal: deadline.signal, timeoutMs: deadline.remainingMs() }, (conn) =>
      raceAbort(Promise.race([conn.client.ping({ signal: deadline.signal, timeout: deadline.remainingMs() }), conn.lost]), deadline.signal),
    );
    return { healthy: true, latencyMs: latency() };
  } catch (e) {
    if (opts.authRequired && !deadline.signal.aborted) {
      const err = toMcpClientError(e, { signal: deadline.signal, timeoutMs: opts.timeoutMs });
      if (err instanceof McpHttpError && isAuthChallenge(err.status)) return { healthy: true, latencyMs: latency() };
    }
    return { healthy: false, latencyMs: latency(), reason: describe(e, deadline.signal, opts.timeoutMs) };
  } finally {
    deadline.dispose();
  }
}

const isAuthChallenge = (status: number) => status === 401 || status === 403;

class HealthPathOutsideOrigin extends Error {}

async function getHealth(endpoint: McpEndpoint, healthPath: string, signal: AbortSignal): Promise<number> {
  const origin = new URL(endpoint.url).origin;
  const url = new URL(healthPath, origin);
  // "//host/x" and "/\host/x" look like paths but resolve to another host; routes reject them, rows may predate that.
  if (url.origin !== origin) throw new HealthPathOutsideOrigin();
  // Redirects could carry the endpoint's Authorization header to another host.
  const res = await (endpoint.fetch ?? fetch)(url, { method: 'GET', headers: endpoint.headers ?? {}, signal, redirect: 'manual' });
  await res.body?.cancel().catch(() => {});
  return res.status;
}

function describe(e: unknown, signal: AbortSignal, timeoutMs: number): string {
  if (e instanceof HealthPathOutsideOrigin) return 'invalid health path';
  const err = toMcpClientError(e, { signal, timeoutMs });
  if (err instanceof McpTimeoutError) return `timed out after ${timeoutMs} ms`;
  if (err instanceof McpHttpError) return `HTTP ${err.status}`;
  if (err instanceof McpUnreachableError) return 'unreachable';
  if (err instanceof McpTargetNotAllowedError) return 'target not allowed';
  if (err instanceof McpAbortedError) return 'aborted';
  return 'not a working MCP server';
}

import { setTimeout as delay } from 'node:timers/promises';

// Hugging Face Spaces as the Hub describes them: where a Space is hosted, which stage its runtime is in,
// and how to get a sleeping one going. Only the Hub API is read unless the caller asks to wake a Space.

export interface SpaceInfo {
  id: string;
  /** Where the Space is served, e.g. https://bob-scanner.hf.space */
  host: string;
  /** Gradio's Streamable HTTP MCP endpoint. */
  mcpUrl: string;
  /** Gradio's legacy HTTP+SSE MCP endpoint. */
  sseUrl: string;
  stage: string;
  private: boolean;
}

export interface SpaceRuntimeInfo {
  stage: string;
  hardware?: string;
}

export interface SpacesClient {
  info(spaceId: string, token?: string): Promise<SpaceInfo>;
  /** Cached per (Space, token) for `cacheMs`; `maxAgeMs` asks for a fresher answer (0: always read the Hub). */
  runtime(spaceId: string, token?: string, opts?: { maxAgeMs?: number }): Promise<SpaceRuntimeInfo>;
  /** One request to the Space's host, which is what wakes a sleeping Space; its answer is ignored. */
  wake(host: string, token?: string): Promise<void>;
}

export type StageClass = 'ready' | 'asleep' | 'starting' | 'unavailable';

export class SpaceNotFoundError extends Error {
  constructor(
    readonly spaceId: string,
    readonly status: number,
    withToken: boolean,
  ) {
    super(`the Space ${spaceId} was not found or is not accessible ${withToken ? 'with the token' : 'without a token'}`);
    this.name = 'SpaceNotFoundError';
  }
}

export class InvalidSpaceIdError extends Error {
  constructor(spaceId: string) {
    super(`invalid Space id ${JSON.stringify(spaceId.slice(0, 200))}: expected owner/name`);
    this.name = 'InvalidSpaceIdError';
  }
}

const SPACE_ID = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}$/;
const WAKE_TIMEOUT_MS = 10_000;
const HUB_TIMEOUT_MS = 15_000;

export function isSpaceId(value: string): boolean {
  return SPACE_ID.test(value) && !value.includes('..');
}

export function createSpacesClient(opts: {
  hubUrl: string;
  cacheMs?: number;
  /** For the Hub API, which is platform configuration. */
  fetch?: typeof fetch;
  /** For requests to a Space's own host, a URL users gave or the Hub named: the outbound guard's fetch. */
  spaceFetch?: (input: URL, init?: RequestInit) => Promise<Response>;
  now?: () => number;
}): SpacesClient {
  const hubUrl = opts.hubUrl.replace(/\/+$/, '');
  const cacheMs = opts.cacheMs ?? 5000;
  const doFetch = opts.fetch ?? fetch;
  const spaceFetch = opts.spaceFetch ?? doFetch;
  const now = opts.now ?? Date.now;
  const cache = new Map<string, { at: number; value: Promise<SpaceRuntimeInfo> }>();

  const hubGet = async (spaceId: string, suffix: string, token: string | undefined): Promise<unknown> => {
    if (!isSpaceId(spaceId)) throw new InvalidSpaceIdError(spaceId);
    const [owner, name] = spaceId.split('/') as [string, string];
    const url = `${hubUrl}/api/spaces/${encodeURIComponent(owner)}/${encodeURIComponent(name)}${suffix}`;
    let res: Response;
    try {
      res = await doFetch(url, {
        headers: { accept: 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        signal: AbortSignal.timeout(HUB_TIMEOUT_MS),
      });
    } catch (e) {
      throw new Error(`could not reach the Hub for Space ${spaceId}: ${(e as Error).message}`);
    }
    if (res.status === 401 || res.status === 404) {
      await res.body?.cancel();
      throw new SpaceNotFoundError(spaceId, res.status, token !== undefined && token !== '');
    }
    if (!res.ok) {
      const detail = res.headers.get('x-error-message') ?? '';
      await res.body?.cancel();
      throw new Error(`the Hub answered ${res.status} for Space ${spaceId}${detail ? `: ${detail.slice(0, 200)}` : ''}`);
    }
    try {
      return (await res.json()) as unknown;
    } catch {
      throw new Error(`the Hub sent an unreadable answer for Space ${spaceId}`);
    }
  };

  const readRuntime = async (spaceId: string, token: string | undefined): Promise<SpaceRuntimeInfo> => {
    const body = asRecord(await hubGet(spaceId, '/runtime', token));
    return runtimeFrom(body, spaceId);
  };

  return {
    async info(spaceId, token) {
      const body = asRecord(await hubGet(spaceId, '', token));
      const host = hostFrom(body);
      if (host === undefined) throw new Error(`the Hub did not say where Space ${spaceId} is hosted`);
      const runtime = body['runtime'] !== undefined ? asRecord(body['runtime']) : {};
      return {
        id: typeof body['id'] === 'string' ? body['id'] : spaceId,
        host,
        mcpUrl: `${host}/gradio_api/mcp/`,
        sseUrl: `${host}/gradio_api/mcp/sse`,
        stage: typeof runtime['stage'] === 'string' ? runtime['stage'] : 'UNKNOWN',
        private: body['private'] === true,
      };
    },

    runtime(spaceId, token, readOpts) {
      const maxAge = Math.min(readOpts?.maxAgeMs ?? cacheMs, cacheMs);
      const key = `${spaceId}\u0000${token ?? ''}`;
      const hit = cache.get(key);
      const t = now();
      if (hit && t - hit.at < maxAge) return hit.value;
      const value = readRuntime(spaceId, token);
      const entry = { at: t, value };
      cache.set(key, entry);
      // A failed read is not remembered.
      value.catch(() => {
        if (cache.get(key) === entry) cache.delete(key);
      });
      // Keep the map from growing without bound when many Spaces or tokens pass through.
      if (cache.size > 1000) {
        for (const [k, v] of cache) if (t - v.at >= cacheMs) cache.delete(k);
      }
      return value;
    },

    async wake(host, token) {
      let url: URL;
      try {
        url = new URL('/', host);
      } catch {
        throw new Error('invalid Space host');
      }
      try {
        const res = await spaceFetch(url, {
          headers: token ? { authorization: `Bearer ${token}` } : {},
          signal: AbortSignal.timeout(WAKE_TIMEOUT_MS),
        });
        await res.body?.cancel();
      } catch {
        // The request reached the host or it did not; either way the runtime stage tells what happened.
      }
    },
  };
}

/** What a stage means for running work on the Space now. */
export function classifyStage(stage: string): StageClass {
  switch (stage) {
    case 'RUNNING':
    case 'RUNNING_BUILDING':
    case 'RUNNING_APP_STARTING':
      return 'ready';
    case 'SLEEPING':
    case 'STOPPED':
      return 'asleep';
    case 'BUILDING':
    case 'APP_STARTING':
      return 'starting';
    default:
      // PAUSED, *_ERROR, NO_APP_FILE, DELETING and anything the Hub may add later.
      return 'unavailable';
  }
}

/**
 * Which of the Space's tools serves each of the server's tools: the same name, else the name with the
 * prefix Gradio gives a Space's tools (`<space name>_`), else the one Space tool ending in `_<tool>`.
 */
export function mapSpaceTools(
  serverTools: string[],
  spaceTools: string[],
  spaceId: string,
): { map: Record<string, string>; missing: string[] } {
  const available = new Set(spaceTools);
  const prefixes = gradioPrefixes(spaceId);
  const map: Record<string, string> = {};
  const missing: string[] = [];
  for (const tool of serverTools) {
    let match: string | undefined;
    if (available.has(tool)) match = tool;
    if (match === undefined) match = prefixes.map((p) => `${p}${tool}`).find((n) => available.has(n));
    if (match === undefined) {
      const suffixed = spaceTools.filter((n) => n.endsWith(`_${tool}`));
      if (new Set(suffixed).size === 1) match = suffixed[0];
    }
    if (match === undefined) missing.push(tool);
    else map[tool] = match;
  }
  return { map, missing };
}

function gradioPrefixes(spaceId: string): string[] {
  const name = spaceId.split('/').pop() ?? spaceId;
  const sanitized = name.replace(/[^A-Za-z0-9_]/g, '_');
  return [...new Set([`${name}_`, `${sanitized}_`, `${sanitized.toLowerCase()}_`])];
}

export type WaitPhase = 'waking' | 'waiting_for_build' | 'ready' | 'unavailable';

export type WaitResult =
  | { ready: true; woke: boolean; stage: string }
  | { ready: false; stage: string; reason: string; permanent: boolean };

/**
 * Gets a Space to a running stage, bounded by `budgetMs`: reads the runtime from the Hub (the first read
 * may come from the cache, later ones never do), wakes a sleeping Space with one request to its host,
 * waits out builds and start-ups, and gives up at once on a stage that will not recover by itself.
 */
export async function waitForSpace(opts: {
  spaceId: string;
  token?: string;
  client: SpacesClient;
  host: string;
  budgetMs: number;
  pollMs: number;
  signal?: AbortSignal;
  heartbeat?: () => void;
  onPhase?: (phase: WaitPhase, stage: string) => void;
  sleep?: (ms: number) => Promise<void>;
}): Promise<WaitResult> {
  const { spaceId, token, client } = opts;
  const pollMs = Math.max(1, opts.pollMs);
  const sleep =
    opts.sleep ??
    (async (ms: number) => {
      try {
        await delay(ms, undefined, opts.signal ? { signal: opts.signal } : {});
      } catch (e) {
        // Give the caller its own abort reason, not the timer's generic AbortError.
        throw opts.signal?.aborted ? (opts.signal.reason ?? e) : e;
      }
    });
  const started = Date.now();
  let slept = 0;
  const elapsed = () => Math.max(Date.now() - started, slept);
  let woke = false;
  let waitingReported = false;
  let stage = 'UNKNOWN';
  let lastError: string | undefined;

  const checkAborted = () => {
    if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('aborted');
  };

  for (let first = true; ; first = false) {
    checkAborted();
    opts.heartbeat?.();
    try {
      const rt = await client.runtime(spaceId, token, first ? {} : { maxAgeMs: 0 });
      stage = rt.stage;
      lastError = undefined;
    } catch (e) {
      if (e instanceof SpaceNotFoundError || e instanceof InvalidSpaceIdError) {
        opts.onPhase?.('unavailable', stage);
        return { ready: false, stage, reason: e.message, permanent: true };
      }
      // The Hub itself failing is worth waiting out, within the budget.
      lastError = (e as Error).message;
    }
    checkAborted();

    if (lastError === undefined) {
      const cls = classifyStage(stage);
      if (cls === 'ready') {
        opts.onPhase?.('ready', stage);
        return { ready: true, woke, stage };
      }
      if (cls === 'unavailable') {
        opts.onPhase?.('unavailable', stage);
        return { ready: false, stage, reason: `the Space ${spaceId} is ${stage}`, permanent: true };
      }
      if (cls === 'asleep' && !woke) {
        opts.onPhase?.('waking', stage);
        woke = true;
        await client.wake(opts.host, token);
        opts.heartbeat?.();
        checkAborted();
      } else if (cls === 'starting' && !woke && !waitingReported) {
        waitingReported = true;
        opts.onPhase?.('waiting_for_build', stage);
      }
    }

    if (elapsed() + pollMs > opts.budgetMs) {
      const last = lastError !== undefined ? `last error: ${lastError}` : `last stage ${stage}`;
      return {
        ready: false,
        stage,
        reason: `the Space ${spaceId} did not start within ${formatDuration(opts.budgetMs)} (${last})`,
        permanent: false,
      };
    }
    await sleep(pollMs);
    slept += pollMs;
  }
}

function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  return Number.isInteger(s) ? `${s} s` : `${s.toFixed(1)} s`;
}

function asRecord(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function runtimeFrom(body: Record<string, unknown>, spaceId: string): SpaceRuntimeInfo {
  if (typeof body['stage'] !== 'string') throw new Error(`the Hub sent no runtime stage for Space ${spaceId}`);
  const hw = asRecord(body['hardware']);
  const hardware = typeof hw['current'] === 'string' ? hw['current'] : typeof hw['requested'] === 'string' ? hw['requested'] : undefined;
  return { stage: body['stage'], ...(hardware !== undefined ? { hardware } : {}) };
}

function hostFrom(body: Record<string, unknown>): string | undefined {
  const host = body['host'];
  if (typeof host === 'string' && /^https?:\/\//.test(host)) return host.replace(/\/+$/, '');
  const sub = body['subdomain'];
  if (typeof sub === 'string' && /^[a-z0-9-]+$/.test(sub)) return `https://${sub}.hf.space`;
  return undefined;
}

/** Gradio serves the legacy SSE transport beside its Streamable HTTP endpoint; other URLs keep theirs. */
export function legacySseUrlOf(mcpUrl: string): string | undefined {
  const u = new URL(mcpUrl);
  if (!/\/gradio_api\/mcp\/?$/.test(u.pathname)) return undefined;
  u.pathname = u.pathname.replace(/\/?$/, '/sse');
  return u.toString();
}

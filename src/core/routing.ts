import type { RoutePlan, RouteTarget } from './task-model.ts';
import type { McpServer, McpTool } from './registry.ts';

// The routing rules (DESIGN §5), as a pure function: the planRoute activity calls it and the plan lands in
// workflow history, so changing these rules never breaks replay of running tasks.

export interface HealthSignal {
  healthy: boolean;
  latencyMs?: number;
  /** Milliseconds since the probe; old signals weigh nothing. */
  ageMs: number;
}

export interface RouteCandidate {
  server: Pick<McpServer, 'id' | 'name' | 'oracleUrl' | 'transport' | 'healthPath' | 'canRunOnUserSpace' | 'fallbackToOracle' | 'cost' | 'maxConcurrency'> &
    Partial<Pick<McpServer, 'actsAs'>>;
  tool: Pick<McpTool, 'name' | 'heavy' | 'timeoutMs'>;
  /** The project's Space for this server, if bound (by id when it was bound by id). */
  space?: { url: string; spaceId?: string };
  health?: { oracle?: HealthSignal; space?: HealthSignal };
  inFlight?: number;
}

export interface RouteRequest {
  tool: string;
  heavy: boolean;
  defaultTimeoutMs: number;
  /** An oracle seen healthy more recently than this needs no probe (PROBE_FRESH). */
  probeFreshMs?: number;
}

const HEALTH_MEMORY_MS = 60_000;

/**
 * Health comes first and is compared on its own, so no load, latency or cost can outweigh it:
 * 0 seen healthy recently, 1 not seen lately (a newly registered server starts here), 2 seen failing.
 * A server no one has seen work can therefore never push aside one that was just seen working.
 */
export function healthTier(c: RouteCandidate, kind: 'oracle' | 'space'): 0 | 1 | 2 {
  const signal = c.health?.[kind];
  if (!signal || signal.ageMs >= HEALTH_MEMORY_MS) return 1;
  return signal.healthy ? 0 : 2;
}

/** Lower is better, within one health tier: load, latency and cost. */
export function scoreCandidate(c: RouteCandidate, kind: 'oracle' | 'space'): number {
  const signal = c.health?.[kind];
  const fresh = signal && signal.ageMs < HEALTH_MEMORY_MS ? signal : undefined;
  const load = c.server.maxConcurrency ? (c.inFlight ?? 0) / c.server.maxConcurrency : 0;
  const latency = fresh?.latencyMs ? Math.min(fresh.latencyMs / 1000, 10) : 0;
  return load * 10 + latency + c.server.cost;
}

/** Only the oracle: a Space's probe also reads its Hub stage and wakes it, which a health record cannot stand in for. */
function isFresh(signal: HealthSignal | undefined, probeFreshMs: number | undefined): boolean {
  return probeFreshMs !== undefined && !!signal?.healthy && signal.ageMs < probeFreshMs;
}

interface Scored extends RouteTarget {
  tier: number;
  score: number;
}

function target(c: RouteCandidate, kind: 'oracle' | 'space', needsConsent: boolean, req: RouteRequest): Scored {
  const url = kind === 'space' ? c.space!.url : c.server.oracleUrl!;
  return {
    kind,
    serverId: c.server.id,
    serverName: c.server.name,
    tool: c.tool.name,
    url,
    transport: c.server.transport,
    // A user's Space exposes only MCP; the declared health path belongs to the oracle deployment.
    ...(kind === 'oracle' && c.server.healthPath ? { healthPath: c.server.healthPath } : {}),
    ...(kind === 'space' && c.space?.spaceId ? { spaceId: c.space.spaceId } : {}),
    needsConsent,
    timeoutMs: c.tool.timeoutMs ?? req.defaultTimeoutMs,
    ...(c.server.maxConcurrency ? { maxConcurrency: c.server.maxConcurrency } : {}),
    ...(kind === 'oracle' && c.server.actsAs ? { actsAs: c.server.actsAs } : {}),
    ...(kind === 'oracle' && isFresh(c.health?.oracle, req.probeFreshMs) ? { fresh: true } : {}),
    tier: healthTier(c, kind),
    score: scoreCandidate(c, kind),
  };
}

/**
 * The targets one server offers for this task, in its own preference order. `meantForSpace`: the task is heavy work
 * that some candidate would run on the user's own Space, so running it on any platform oracle needs consent.
 */
function targetsOf(c: RouteCandidate, req: RouteRequest, meantForSpace: boolean): Scored[] {
  const heavy = req.heavy || c.tool.heavy;
  const hasOracle = !!c.server.oracleUrl;
  const hasSpace = c.server.canRunOnUserSpace && !!c.space;
  if (heavy && c.server.canRunOnUserSpace) {
    const out: Scored[] = [];
    if (hasSpace) out.push(target(c, 'space', false, req));
    // Moving work meant for the user's Space onto platform infrastructure needs the server's leave and the user's consent.
    if (hasOracle && c.server.fallbackToOracle) out.push(target(c, 'oracle', true, req));
    return out;
  }
  if (hasOracle) return [target(c, 'oracle', meantForSpace, req)];
  if (hasSpace) return [target(c, 'space', false, req)];
  return [];
}

export function planRoute(req: RouteRequest, candidates: RouteCandidate[]): RoutePlan {
  const meantForSpace = candidates.some((c) => (req.heavy || c.tool.heavy) && c.server.canRunOnUserSpace);
  const all = candidates.flatMap((c) => targetsOf(c, req, meantForSpace));
  // Targets that need no consent first (ask a person only when nothing else can run it), then by health tier and
  // score; ties break by server id and kind so the same inputs always give the same plan.
  all.sort(
    (a, b) =>
      Number(a.needsConsent) - Number(b.needsConsent) ||
      a.tier - b.tier ||
      a.score - b.score ||
      a.serverId.localeCompare(b.serverId) ||
      a.kind.localeCompare(b.kind),
  );
  const targets = all.map(({ score: _score, tier: _tier, ...t }) => t);
  if (targets.length > 0) return { targets };
  if (candidates.length === 0) return { targets, note: `no enabled server offers the tool "${req.tool}"` };
  return {
    targets,
    note: `the tool "${req.tool}" is heavy and must run on your own Space: bind a Space for ${candidates.map((c) => c.server.name).join(', ')}, or ask for a server that allows running it on the platform`,
  };
}

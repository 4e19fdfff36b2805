import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from '../src/lib/logger.ts';
import type { Metrics } from '../src/lib/metrics.ts';
import { SlotLostError, type ConcurrencySlots } from '../src/core/concurrency-slots.ts';
import type { HealthStore } from '../src/core/health-store.ts';
import type { Registry } from '../src/core/registry.ts';
import type { ResultService } from '../src/core/results.ts';
import { planRoute as planRouteRules, type RouteCandidate } from '../src/core/routing.ts';
import { SpaceBindingUnusableError, type SpaceBindings } from '../src/core/space-bindings.ts';
import type { TaskEvents } from '../src/core/task-events.ts';
import type { TaskService } from '../src/core/tasks.ts';
import { loadArguments, loadSubmitter } from '../src/core/tasks-repository.ts';
import { ProviderTokenMissingError, ProviderTokenRefusedError, ProviderTokenTransportError, type ActingAs } from '../src/core/acting-as.ts';
import { NotFoundError } from '../src/core/errors.ts';
import type { Db } from '../src/db/create-db.ts';
import { callTool } from '../src/integrations/mcp/call-tool.ts';
import type { McpEndpoint } from '../src/integrations/mcp/connect.ts';
import type { OutboundFetch } from '../src/integrations/outbound-guard.ts';
import { isPermanentMcpError } from '../src/integrations/mcp/errors.ts';
import type { McpSessionPool } from '../src/integrations/mcp/session-pool.ts';
import { probeEndpoint } from '../src/integrations/mcp/probe.ts';
import { listTools } from '../src/integrations/mcp/list-tools.ts';
import { legacySseUrlOf, mapSpaceTools, waitForSpace, type SpacesClient } from '../src/integrations/huggingface/spaces.ts';
import { SLOT_LOST } from '../workflows/contracts.ts';
import { type ResultRef, type RoutePlan, type RouteTarget, type TaskState } from '../src/core/task-model.ts';
import { toActivityFailure } from './failures.ts';

/** A Space bound by id: what the Hub checks need. The token never leaves the worker. */
interface SpaceAccess {
  spaceId: string;
  host: string;
  token?: string;
}

export interface ActivityDeps {
  db: Db;
  tasks: TaskService;
  registry: Registry;
  bindings: SpaceBindings;
  /** The submitting user's provider token for servers that act as the user. */
  actingAs: ActingAs;
  health: HealthStore;
  slots: ConcurrencySlots;
  results: ResultService;
  events: TaskEvents;
  spaces: SpacesClient;
  /** The outbound guard's fetch: every request to an oracle or a Space goes through it. */
  outboundFetch: OutboundFetch;
  /** Initialized MCP sessions shared by probes, tool discovery and dispatches; without it, one session per call. */
  sessions?: McpSessionPool;
  metrics: Metrics;
  log: Logger;
  settings: {
    toolTimeoutMs: number;
    probeTimeoutMs: number;
    heartbeatEveryMs: number;
    spaceStartTimeoutMs: number;
    spacePollMs: number;
    /** A healthy oracle probe younger than this stands in for a new one. */
    probeFreshMs: number;
  };
}

/** Activities are thin adapters: they call src/core and src/integrations and translate errors for Temporal. */
export function createActivities(deps: ActivityDeps) {
  const { settings } = deps;

  /** Where and how to reach a target; a Space's token is loaded here, never carried in history. */
  async function endpointFor(projectId: string, target: RouteTarget): Promise<{ endpoint: McpEndpoint; space?: SpaceAccess; toolMap?: Record<string, string> }> {
    if (target.kind === 'oracle') return { endpoint: { url: target.url, transport: target.transport, fetch: deps.outboundFetch } };
    let creds;
    try {
      creds = await deps.bindings.credentials(projectId, target.serverId);
    } catch (err) {
      // No retry can fix a token that does not open or may not travel: the next target (the oracle) is tried.
      if (err instanceof SpaceBindingUnusableError) throw ApplicationFailure.nonRetryable(err.message, 'TargetRejected');
      throw err;
    }
    if (!creds) throw ApplicationFailure.nonRetryable('the Space binding was removed', 'TargetRejected');
    const sseUrl = legacySseUrlOf(creds.url);
    return {
      endpoint: {
        url: creds.url,
        transport: target.transport,
        fetch: deps.outboundFetch,
        ...(sseUrl ? { sseUrl } : {}),
        ...(creds.token ? { headers: { Authorization: `Bearer ${creds.token}` } } : {}),
      },
      ...(creds.spaceId ? { space: { spaceId: creds.spaceId, host: new URL(creds.url).origin, token: creds.token } } : {}),
      ...(creds.toolMap ? { toolMap: creds.toolMap } : {}),
    };
  }

  /**
   * A Space named by id: read its stage from the Hub before touching it; wake it or wait for its build, bounded and
   * heartbeating, and say so in the task's events. Unavailable stages fail at once (no retry) so the fallback runs.
   */
  async function readySpace(taskId: string, projectId: string, target: RouteTarget, space: SpaceAccess | undefined): Promise<void> {
    if (!space) return;
    const ctx = Context.current();
    let lastPhase: string | undefined;
    const outcome = await waitForSpace({
      spaceId: space.spaceId,
      token: space.token,
      client: deps.spaces,
      host: space.host,
      budgetMs: settings.spaceStartTimeoutMs,
      pollMs: settings.spacePollMs,
      signal: ctx.cancellationSignal,
      heartbeat: () => ctx.heartbeat(),
      onPhase: (phase, stage) => {
        if (phase === lastPhase) return;
        lastPhase = phase;
        const message = SPACE_PHASE_MESSAGES[phase]?.(space.spaceId, stage);
        deps.events.append(taskId, 'progress', { phase, stage, ...(message ? { message } : {}) }).catch(() => undefined);
      },
    });
    if (ctx.cancellationSignal.aborted) throw new CancelledFailure('the task was canceled');
    if (!outcome.ready) {
      await deps.health.record(target.serverId, 'space', { healthy: false }, projectId);
      throw ApplicationFailure.nonRetryable(outcome.reason, 'TargetUnavailable');
    }
  }

  /**
   * The Space's name for a tool. Gradio prefixes tool names with the Space's name; a Space bound while asleep has no
   * map yet, so it is learnt here (the Space is awake once probed) and kept on the binding.
   */
  async function spaceToolName(projectId: string, target: RouteTarget, tool: string, endpoint: McpEndpoint, toolMap?: Record<string, string>): Promise<string> {
    if (target.kind !== 'space' || !target.spaceId) return tool;
    if (toolMap?.[tool]) return toolMap[tool];
    const server = await deps.registry.getById(target.serverId);
    const offered = await listTools(endpoint, { timeoutMs: settings.probeTimeoutMs * 2, sessions: deps.sessions });
    const mapped = mapSpaceTools(server.tools.map((t) => t.name), offered.map((t) => t.name), target.spaceId);
    await deps.bindings.learnToolMap(projectId, target.serverId, mapped.map, mapped.missing);
    const name = mapped.map[tool];
    if (!name) throw ApplicationFailure.nonRetryable(`your Space ${target.spaceId} does not offer the tool "${tool}"`, 'ToolNotFound');
    return name;
  }

  /**
   * What a call to an oracle acting as the user carries: the submitter's own token, looked up now from the server's
   * current registry row (so a server that stopped acting as the user gets nothing). Never logged, never returned.
   */
  async function userHeaders(taskId: string, target: RouteTarget): Promise<Record<string, string>> {
    if (target.kind !== 'oracle' || !target.actsAs) return {};
    try {
      const submitter = await loadSubmitter(deps.db, taskId);
      if (!submitter) throw ApplicationFailure.nonRetryable(`task ${taskId} was not found`, 'TaskNotFound');
      const server = await deps.registry.getById(target.serverId);
      return await deps.actingAs.headersFor(submitter, server, target.url);
    } catch (err) {
      if (err instanceof ProviderTokenMissingError || err instanceof ProviderTokenRefusedError) {
        throw ApplicationFailure.create({ message: err.message, type: err.code, nonRetryable: true, details: [{ provider: err.provider }] });
      }
      if (err instanceof ProviderTokenTransportError || err instanceof NotFoundError) throw ApplicationFailure.nonRetryable(err.message, 'TargetRejected');
      throw err;
    }
  }

  const healthScope = (projectId: string, target: RouteTarget) => (target.kind === 'space' ? projectId : undefined);

  async function planRoute(input: { taskId: string; projectId: string; tool: string; heavy: boolean }): Promise<RoutePlan> {
    const offerings = await deps.registry.offerings(input.tool, input.projectId);
    const spaces = await deps.bindings.spacesFor(input.projectId, offerings.map((o) => o.server.id));
    const candidates: RouteCandidate[] = await Promise.all(
      offerings.map(async (o) => ({
        server: o.server,
        tool: o.tool,
        ...(spaces.has(o.server.id) ? { space: spaces.get(o.server.id)! } : {}),
        health: {
          oracle: await deps.health.read(o.server.id, 'oracle'),
          space: await deps.health.read(o.server.id, 'space', input.projectId),
        },
        inFlight: await deps.slots.inFlight(o.server.id),
      })),
    );
    return planRouteRules({ tool: input.tool, heavy: input.heavy, defaultTimeoutMs: settings.toolTimeoutMs, probeFreshMs: settings.probeFreshMs }, candidates);
  }

  async function recordStatus(input: { taskId: string; state: TaskState; detail?: Record<string, unknown> }): Promise<void> {
    try {
      await deps.tasks.recordState(input.taskId, input.state, input.detail);
    } catch (err) {
      throw toActivityFailure(err);
    }
  }

  async function tryAcquireSlot(input: { taskId: string; target: RouteTarget }): Promise<boolean> {
    const acquired = await deps.slots.tryAcquire(input.taskId, { serverId: input.target.serverId, serverMax: input.target.maxConcurrency });
    deps.metrics.slotAttempts.inc({ outcome: acquired ? 'acquired' : 'full' });
    return acquired;
  }

  async function releaseSlot(input: { taskId: string; target: RouteTarget }): Promise<void> {
    await deps.slots.release(input.taskId, { serverId: input.target.serverId, serverMax: input.target.maxConcurrency });
  }

  /**
   * The output is already saved: move a staged one to the blob store (Hub failures throw and are retried here,
   * without running the tool again) or cache an inline one, then mark the task succeeded and publish.
   */
  async function storeResult(input: { taskId: string; ref: ResultRef; state: TaskState }): Promise<ResultRef> {
    try {
      const ref = await deps.results.publish(input.taskId);
      if (!ref) throw ApplicationFailure.nonRetryable(`task ${input.taskId} has no saved output`, 'ResultMissing');
      await deps.tasks.recordSuccess(input.taskId, ref, input.state);
      return ref;
    } catch (err) {
      if (err instanceof ApplicationFailure) throw err;
      deps.log.warn({ taskId: input.taskId, err: { message: (err as Error).message } }, 'storing the result failed');
      throw toActivityFailure(err);
    }
  }

  return {
    planRoute,
    recordStatus,
    tryAcquireSlot,
    releaseSlot,
    storeResult,

    // Pairs of the steps above, each run as one local activity: one marker and one activation instead of two. A retry
    // repeats both halves, and each half is idempotent (the status write skips a transition already logged, a holder
    // re-enters its own slot, a release of a slot not held does nothing, the result store skips a finished task).

    async recordRoutingAndPlan(input: { taskId: string; projectId: string; tool: string; heavy: boolean; state: TaskState }): Promise<RoutePlan> {
      await recordStatus({ taskId: input.taskId, state: input.state });
      return planRoute(input);
    },

    /** Records `running` only when the slot was taken: a task left waiting stays `queued`. */
    async acquireSlotAndMarkRunning(input: { taskId: string; target: RouteTarget; state: TaskState; detail?: Record<string, unknown> }): Promise<boolean> {
      if (!(await tryAcquireSlot(input))) return false;
      await recordStatus(input);
      return true;
    },

    /** The slot is freed first, so a finished task never still holds one. */
    async releaseSlotAndStoreResult(input: { taskId: string; target: RouteTarget; ref: ResultRef; state: TaskState }): Promise<ResultRef> {
      await releaseSlot(input);
      return storeResult(input);
    },

    /** Throws (retryably) when the target is unhealthy, so the probe gets the same retries as a dispatch. */
    async probe(input: { taskId: string; projectId: string; target: RouteTarget }): Promise<void> {
      const ctx = Context.current();
      // The plan already skips the probe of an oracle fresh at planning; this covers a fallback oracle reached later.
      // A dispatch that fails marks the target unhealthy, so the next task probes for real.
      if (input.target.kind === 'oracle') {
        const recent = await deps.health.read(input.target.serverId, 'oracle');
        if (recent?.healthy && recent.ageMs < settings.probeFreshMs) return;
      }
      const { endpoint, space } = await endpointFor(input.projectId, input.target);
      await readySpace(input.taskId, input.projectId, input.target, space);
      // A probe is not a user's call: it never carries a user's token, so a server acting as the user may refuse it.
      const result = await probeEndpoint(endpoint, {
        healthPath: input.target.healthPath,
        timeoutMs: settings.probeTimeoutMs,
        signal: ctx.cancellationSignal,
        sessions: deps.sessions,
        authRequired: input.target.kind === 'oracle' && input.target.actsAs !== undefined,
      });
      await deps.health.record(input.target.serverId, input.target.kind, result, healthScope(input.projectId, input.target));
      if (!result.healthy) {
        ctx.log.info('target unhealthy', { server: input.target.serverName, kind: input.target.kind, reason: result.reason, attempt: ctx.info.attempt });
        throw ApplicationFailure.retryable(`${input.target.kind === 'space' ? 'Space' : 'server'} ${input.target.serverName} is unavailable: ${result.reason ?? 'unhealthy'}`, 'TargetUnhealthy');
      }
    },

    /**
     * The MCP tools/call. Progress becomes heartbeats and `progress` events; cancellation aborts the call.
     * The output goes straight to the result store, and only a small reference returns into history.
     */
    async dispatch(input: { taskId: string; projectId: string; tool: string; target: RouteTarget; requestId?: string }): Promise<ResultRef> {
      const ctx = Context.current();
      const { target, taskId } = input;
      const log = deps.log.child({ taskId, requestId: input.requestId, server: target.serverName, kind: target.kind, attempt: ctx.info.attempt });
      const args = await loadArguments(deps.db, taskId);
      if (!args) throw ApplicationFailure.nonRetryable(`task ${taskId} has no stored arguments`, 'TaskNotFound');
      const { endpoint: bare, toolMap } = await endpointFor(input.projectId, target);
      // Before the slot: a user who never linked the provider fails here, without taking anyone's place.
      const asUser = await userHeaders(taskId, target);
      const endpoint: McpEndpoint = Object.keys(asUser).length > 0 ? { ...bare, headers: { ...bare.headers, ...asUser } } : bare;
      const scope = { serverId: target.serverId, serverMax: target.maxConcurrency };

      // Progress events are appended one after another so their order is the order the server sent them.
      let events = Promise.resolve();
      const emit = (data: Record<string, unknown>) => {
        events = events.then(() => deps.events.append(taskId, 'progress', data).then(() => undefined)).catch((err) => log.warn({ err }, 'progress event lost'));
      };
      if (ctx.info.attempt > 1) emit({ message: `attempt ${ctx.info.attempt} on ${target.kind === 'space' ? 'your Space' : 'the oracle'} (${target.serverName})`, attempt: ctx.info.attempt });

      // The slot was taken by the workflow, maybe a while ago (a queued activity, a retry after a lost worker):
      // re-enter it, which renews the lease, or hand back to the workflow to wait for one. Then keep renewing it; a
      // lease lost mid-call stops the call, so the cap is never exceeded unseen.
      if (!(await deps.slots.tryAcquire(taskId, scope))) throw ApplicationFailure.nonRetryable('the dispatch slot was lost before the call', SLOT_LOST);
      const lease = deps.slots.keepHeld(taskId, scope, {
        everyMs: settings.heartbeatEveryMs,
        onRenewError: (err) => log.warn({ err: { message: (err as Error).message } }, 'slot lease renewal failed'),
      });
      // Heartbeats keep flowing while a tool is silent, so a lost worker is noticed and cancellation arrives.
      const beat = setInterval(() => ctx.heartbeat(), settings.heartbeatEveryMs);
      const started = performance.now();
      deps.metrics.dispatchesInFlight.inc();
      let outcome = 'failed';
      try {
        // Gradio names a Space's tools after the Space; the binding recorded which one serves this tool.
        const toolName = await spaceToolName(input.projectId, target, target.tool ?? input.tool, endpoint, toolMap);
        const result = await callTool(endpoint, toolName, args, {
          timeoutMs: target.timeoutMs,
          signal: AbortSignal.any([ctx.cancellationSignal, lease.signal]),
          sessions: deps.sessions,
          meta: dispatchMeta(taskId, ctx.info.attempt),
          onProgress: (p) => {
            ctx.heartbeat(p);
            emit({ progress: p.progress, ...(p.total !== undefined ? { total: p.total } : {}), ...(p.message ? { message: p.message } : {}) });
          },
        });
        await events;
        const body = Buffer.from(JSON.stringify({ content: result.content, ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}) }));
        const ref = await deps.results.save(taskId, body, 'application/json');
        outcome = 'succeeded';
        // The oracle answered: the next tasks need not probe it (a probe is an activity and a workflow task more each).
        // Best effort: a health cache that cannot be written only means a probe later.
        if (target.kind === 'oracle') await deps.health.confirmHealthy(target.serverId, 'oracle').catch(() => undefined);
        log.info({ size: ref.size, storage: ref.storage }, 'dispatch succeeded');
        return ref;
      } catch (err) {
        await events;
        if (ctx.cancellationSignal.aborted) {
          outcome = 'canceled';
          throw new CancelledFailure('the task was canceled');
        }
        if (lease.signal.aborted) {
          const reason = lease.signal.reason instanceof SlotLostError ? lease.signal.reason.message : 'the dispatch slot was lost';
          log.warn({ reason }, 'dispatch stopped: slot lost');
          throw ApplicationFailure.nonRetryable(reason, SLOT_LOST);
        }
        log.warn({ err: { message: (err as Error).message, name: (err as Error).name } }, 'dispatch failed');
        if (!isPermanentMcpError(err)) {
          await deps.health.record(target.serverId, target.kind, { healthy: false }, healthScope(input.projectId, target)).catch(() => undefined);
        }
        throw toActivityFailure(err);
      } finally {
        clearInterval(beat);
        lease.stop();
        deps.metrics.dispatchesInFlight.dec();
        deps.metrics.dispatchDuration.observe({ target_kind: target.kind, outcome }, (performance.now() - started) / 1000);
      }
    },
  };
}

const SPACE_PHASE_MESSAGES: Record<string, (spaceId: string, stage: string) => string> = {
  waking: (id, stage) => `Your Space ${id} is ${stage.toLowerCase()}: waking it`,
  waiting_for_build: (id, stage) => `Your Space ${id} is starting (${stage}): waiting for it`,
  ready: (id) => `Your Space ${id} is running`,
  unavailable: (id, stage) => `Your Space ${id} is unavailable (${stage})`,
};

/**
 * Sent in every tools/call's `_meta` (see README, "For tool authors"): dispatch is at-least-once, so a tool with side
 * effects can recognise a retry of a call it already ran by the key, which is the same for every try of one task.
 */
export const TASK_META_KEY = 'dev.orchestrator/task';

function dispatchMeta(taskId: string, attempt: number): Record<string, unknown> {
  return { [TASK_META_KEY]: { id: taskId, attempt, idempotencyKey: taskId } };
}

export type Activities = ReturnType<typeof createActivities>;

import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from '../src/lib/logger.ts';
import type { Metrics } from '../src/lib/metrics.ts';
import type { ConcurrencySlots } from '../src/core/concurrency-slots.ts';
import type { HealthStore } from '../src/core/health-store.ts';
import type { Registry } from '../src/core/registry.ts';
import type { ResultService } from '../src/core/results.ts';
import { planRoute as planRouteRules, type RouteCandidate } from '../src/core/routing.ts';
import type { SpaceBindings } from '../src/core/space-bindings.ts';
import type { TaskEvents } from '../src/core/task-events.ts';
import type { TaskService } from '../src/core/tasks.ts';
import { loadArguments } from '../src/core/tasks-repository.ts';
import type { Db } from '../src/db/create-db.ts';
import { callTool } from '../src/integrations/mcp/call-tool.ts';
import type { McpEndpoint } from '../src/integrations/mcp/connect.ts';
import { probeEndpoint } from '../src/integrations/mcp/probe.ts';
import type { ResultRef, RoutePlan, RouteTarget, TaskState } from '../workflows/contracts.ts';
import { toActivityFailure } from './failures.ts';

export interface ActivityDeps {
  db: Db;
  tasks: TaskService;
  registry: Registry;
  bindings: SpaceBindings;
  health: HealthStore;
  slots: ConcurrencySlots;
  results: ResultService;
  events: TaskEvents;
  metrics: Metrics;
  log: Logger;
  settings: { toolTimeoutMs: number; probeTimeoutMs: number; slotPollMs: number; heartbeatEveryMs: number };
}

/** Activities are thin adapters: they call src/core and src/integrations and translate errors for Temporal. */
export function createActivities(deps: ActivityDeps) {
  const { settings } = deps;

  /** Where and how to reach a target; a Space's token is loaded here, never carried in history. */
  async function endpointFor(projectId: string, target: RouteTarget): Promise<McpEndpoint> {
    if (target.kind === 'oracle') return { url: target.url, transport: target.transport };
    const creds = await deps.bindings.credentials(projectId, target.serverId);
    if (!creds) throw ApplicationFailure.nonRetryable('the Space binding was removed', 'TargetRejected');
    return { url: creds.url, transport: target.transport, ...(creds.token ? { headers: { Authorization: `Bearer ${creds.token}` } } : {}) };
  }

  const healthScope = (projectId: string, target: RouteTarget) => (target.kind === 'space' ? projectId : undefined);

  return {
    async planRoute(input: { taskId: string; projectId: string; tool: string; heavy: boolean }): Promise<RoutePlan> {
      const offerings = await deps.registry.offerings(input.tool);
      const spaces = await deps.bindings.urlsFor(input.projectId, offerings.map((o) => o.server.id));
      const candidates: RouteCandidate[] = await Promise.all(
        offerings.map(async (o) => ({
          server: o.server,
          tool: o.tool,
          ...(spaces.has(o.server.id) ? { space: { url: spaces.get(o.server.id)! } } : {}),
          health: {
            oracle: await deps.health.read(o.server.id, 'oracle'),
            space: await deps.health.read(o.server.id, 'space', input.projectId),
          },
          inFlight: await deps.slots.inFlight(o.server.id),
        })),
      );
      return planRouteRules({ tool: input.tool, heavy: input.heavy, defaultTimeoutMs: settings.toolTimeoutMs }, candidates);
    },

    async recordStatus(input: { taskId: string; state: TaskState; detail?: Record<string, unknown> }): Promise<void> {
      try {
        await deps.tasks.recordState(input.taskId, input.state, input.detail);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Throws (retryably) when the target is unhealthy, so the probe gets the same retries as a dispatch. */
    async probe(input: { taskId: string; projectId: string; target: RouteTarget }): Promise<void> {
      const ctx = Context.current();
      const endpoint = await endpointFor(input.projectId, input.target);
      const result = await probeEndpoint(endpoint, {
        healthPath: input.target.healthPath,
        timeoutMs: settings.probeTimeoutMs,
        signal: ctx.cancellationSignal,
      });
      await deps.health.record(input.target.serverId, input.target.kind, result, healthScope(input.projectId, input.target));
      if (!result.healthy) {
        ctx.log.info('target unhealthy', { server: input.target.serverName, kind: input.target.kind, reason: result.reason, attempt: ctx.info.attempt });
        throw ApplicationFailure.retryable(`${input.target.kind === 'space' ? 'Space' : 'server'} ${input.target.serverName} is unavailable: ${result.reason ?? 'unhealthy'}`, 'TargetUnhealthy');
      }
    },

    async tryAcquireSlot(input: { taskId: string; target: RouteTarget }): Promise<boolean> {
      return deps.slots.tryAcquire(input.taskId, { serverId: input.target.serverId, serverMax: input.target.maxConcurrency });
    },

    /** Waits, heartbeating, until a slot frees up. Long waits are normal here, not failures. */
    async waitForSlot(input: { taskId: string; target: RouteTarget }): Promise<void> {
      const ctx = Context.current();
      for (;;) {
        if (await deps.slots.tryAcquire(input.taskId, { serverId: input.target.serverId, serverMax: input.target.maxConcurrency })) return;
        ctx.heartbeat();
        await ctx.sleep(settings.slotPollMs + Math.floor(Math.random() * settings.slotPollMs));
      }
    },

    async releaseSlot(input: { taskId: string; target: RouteTarget }): Promise<void> {
      await deps.slots.release(input.taskId, { serverId: input.target.serverId, serverMax: input.target.maxConcurrency });
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
      const endpoint = await endpointFor(input.projectId, target);
      const scope = { serverId: target.serverId, serverMax: target.maxConcurrency };

      // Progress events are appended one after another so their order is the order the server sent them.
      let events = Promise.resolve();
      const emit = (data: Record<string, unknown>) => {
        events = events.then(() => deps.events.append(taskId, 'progress', data).then(() => undefined)).catch((err) => log.warn({ err }, 'progress event lost'));
      };
      if (ctx.info.attempt > 1) emit({ message: `attempt ${ctx.info.attempt} on ${target.kind === 'space' ? 'your Space' : 'the oracle'} (${target.serverName})`, attempt: ctx.info.attempt });

      // Heartbeats keep flowing while a tool is silent, so a lost worker is noticed and cancellation arrives.
      const beat = setInterval(() => {
        ctx.heartbeat();
        deps.slots.renew(taskId, scope).catch((err) => log.warn({ err }, 'slot lease renewal failed'));
      }, settings.heartbeatEveryMs);
      const started = performance.now();
      deps.metrics.dispatchesInFlight.inc();
      let outcome = 'failed';
      try {
        const result = await callTool(endpoint, input.tool, args, {
          timeoutMs: target.timeoutMs,
          signal: ctx.cancellationSignal,
          onProgress: (p) => {
            ctx.heartbeat(p);
            emit({ progress: p.progress, ...(p.total !== undefined ? { total: p.total } : {}), ...(p.message ? { message: p.message } : {}) });
          },
        });
        await events;
        const body = Buffer.from(JSON.stringify({ content: result.content, ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}) }));
        const ref = await deps.results.save(taskId, body, 'application/json');
        outcome = 'succeeded';
        log.info({ size: ref.size, storage: ref.storage }, 'dispatch succeeded');
        return ref;
      } catch (err) {
        await events;
        if (ctx.cancellationSignal.aborted) {
          outcome = 'canceled';
          throw new CancelledFailure('the task was canceled');
        }
        log.warn({ err: { message: (err as Error).message, name: (err as Error).name } }, 'dispatch failed');
        throw toActivityFailure(err);
      } finally {
        clearInterval(beat);
        deps.metrics.dispatchesInFlight.dec();
        deps.metrics.dispatchDuration.observe({ target_kind: target.kind, outcome }, (performance.now() - started) / 1000);
      }
    },

    /** The output is already in the result store: cache it, mark the task succeeded, publish. */
    async storeResult(input: { taskId: string; ref: ResultRef; state: TaskState }): Promise<void> {
      try {
        await deps.results.warmCache(input.taskId);
        await deps.tasks.recordSuccess(input.taskId, input.ref, input.state);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;

import { Counter, Gauge, Histogram, collectDefaultMetrics } from 'prom-client';
import type { Registry } from 'prom-client';

// HTTP calls are milliseconds; an SSE stream or a slow tool call can last minutes.
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const DISPATCH_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export function createMetrics(registry: Registry) {
  const registers = [registry];
  return {
    httpRequestDuration: new Histogram<'method' | 'route' | 'status'>({
      name: 'orchestrator_http_request_duration_seconds',
      help: 'HTTP request duration by method, matched route pattern and status',
      labelNames: ['method', 'route', 'status'],
      buckets: HTTP_BUCKETS,
      registers,
    }),
    tasksTotal: new Counter<'outcome'>({
      name: 'orchestrator_tasks_total',
      help: 'Tasks that reached a terminal state, by outcome',
      labelNames: ['outcome'],
      registers,
    }),
    dispatchDuration: new Histogram<'target_kind' | 'outcome'>({
      name: 'orchestrator_dispatch_duration_seconds',
      help: 'Duration of one MCP tool call dispatch, by target kind and outcome',
      labelNames: ['target_kind', 'outcome'],
      buckets: DISPATCH_BUCKETS,
      registers,
    }),
    dispatchesInFlight: new Gauge({
      name: 'orchestrator_dispatches_in_flight',
      help: 'MCP tool call dispatches currently running',
      registers,
    }),
    eventsPublished: new Counter<'type'>({
      name: 'orchestrator_events_published_total',
      help: 'Task events published, by event type',
      labelNames: ['type'],
      registers,
    }),
    tasksReconciled: new Counter({
      name: 'orchestrator_tasks_reconciled_total',
      help: 'Accepted tasks whose workflow the reconciler started because their submission did not',
      registers,
    }),
    bestEffortFailures: new Counter<'op'>({
      name: 'orchestrator_best_effort_failures_total',
      help: 'Redis cache writes and event publishes that failed or timed out and were skipped (the work itself went on), by operation',
      labelNames: ['op'],
      registers,
    }),
    slotAttempts: new Counter<'outcome'>({
      name: 'orchestrator_slot_attempts_total',
      help: 'Tries to take a dispatch slot, by outcome (acquired, or full: the task waits on a timer and tries again)',
      labelNames: ['outcome'],
      registers,
    }),
    sseStreamsOpen: new Gauge({
      name: 'orchestrator_sse_streams_open',
      help: 'Event streams (SSE) currently open on this API process',
      registers,
    }),
    rateLimitRejections: new Counter<'limit'>({
      name: 'orchestrator_rate_limit_rejections_total',
      help: 'Requests refused with 429 by a per-tenant limit, by limit',
      labelNames: ['limit'],
      registers,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Unfinished tasks by status, counted in Postgres when /metrics is scraped (the partial index of active tasks keeps
 * it cheap): every API replica reports the same numbers, so dashboards take max(), not sum().
 */
export function registerActiveTaskGauge(registry: Registry, countByStatus: () => Promise<Record<string, number>>, statuses: readonly string[]): void {
  new Gauge<'status'>({
    name: 'orchestrator_tasks_active',
    help: 'Tasks not yet finished, by status (queued, routing, running, awaiting_consent), counted in Postgres at scrape time',
    labelNames: ['status'],
    registers: [registry],
    async collect() {
      const counts = await countByStatus();
      for (const status of statuses) this.set({ status }, counts[status] ?? 0);
    },
  });
}

export function collectProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry });
}

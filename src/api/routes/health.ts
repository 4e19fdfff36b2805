import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import type { ApiOperation } from '../api-operation.ts';
import { Problem } from '../problem.ts';

/** Throws when the dependency is unreachable; 'in process' when it is built into this process (nothing to reach). */
export type ReadinessCheck = () => Promise<void | 'in process'>;
const CHECK_STATES = ['up', 'down', 'in process'] as const;

/** Liveness, readiness (which dependency is down) and Prometheus metrics. */
export function healthRoutes(deps: { checks: Record<string, ReadinessCheck>; metricsRegistry: Registry; timeoutMs?: number }) {
  const router = new Router();
  const timeoutMs = deps.timeoutMs ?? 2000;

  router.get('/healthz', (ctx) => {
    ctx.body = { status: 'ok' };
  });

  router.get('/readyz', async (ctx) => {
    const entries = await Promise.all(
      Object.entries(deps.checks).map(async ([name, check]) => {
        try {
          const state = await Promise.race([check(), new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs).unref())]);
          return [name, state ?? 'up'] as const;
        } catch {
          return [name, 'down'] as const;
        }
      }),
    );
    const checks = Object.fromEntries(entries);
    const down = entries.filter(([, s]) => s === 'down').map(([n]) => n);
    if (down.length > 0) throw new Problem(503, 'NotReady', 'Service Unavailable', `unreachable: ${down.join(', ')}`, { checks });
    ctx.body = { status: 'ready', checks };
  });

  router.get('/metrics', async (ctx) => {
    ctx.type = deps.metricsRegistry.contentType;
    ctx.body = await deps.metricsRegistry.metrics();
  });

  return router;
}

export const healthOperations: ApiOperation[] = [
  { method: 'get', path: '/healthz', operationId: 'liveness', summary: 'The process answers', tags: ['health'], auth: 'none', responses: { 200: { description: 'alive', schema: z.object({ status: z.literal('ok') }) } } },
  {
    method: 'get', path: '/readyz', operationId: 'readiness', summary: 'Every dependency answers (Postgres, Redis, Temporal); Redis may be "in process" (one process, no REDIS_URL)', tags: ['health'], auth: 'none',
    responses: { 200: { description: 'ready', schema: z.object({ status: z.literal('ready'), checks: z.record(z.string(), z.enum(CHECK_STATES)) }) } }, problems: [503],
  },
  { method: 'get', path: '/metrics', operationId: 'metrics', summary: 'Prometheus metrics', tags: ['health'], auth: 'none', responses: { 200: { description: 'metrics in the Prometheus text format', contentType: 'text/plain', schema: z.string() } } },
];

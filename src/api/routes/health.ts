import Router from '@koa/router';
import type { Registry } from 'prom-client';
import { Problem } from '../problem.ts';

export type ReadinessCheck = () => Promise<void>;

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
          await Promise.race([check(), new Promise((_, reject) => setTimeout(() => reject(new Error('timed out')), timeoutMs).unref())]);
          return [name, 'up'] as const;
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

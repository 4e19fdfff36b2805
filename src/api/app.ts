import Koa from 'koa';
import type { TokenService } from '../core/auth-tokens.ts';
import type { ProjectService } from '../core/projects.ts';
import type { Registry } from '../core/registry.ts';
import type { ResultService } from '../core/results.ts';
import type { SpaceBindings } from '../core/space-bindings.ts';
import type { TaskEventFeed } from '../core/task-event-feed.ts';
import type { TaskService } from '../core/tasks.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../lib/metrics.ts';
import type { Registry as MetricsRegistry } from 'prom-client';
import { authenticate } from './authenticate.ts';
import { domainProblem } from './domain-problems.ts';
import { jsonBody } from './json-body.ts';
import { noSniff } from './no-sniff.ts';
import { notFoundFallback, problemMiddleware } from './problem.ts';
import { requestContext } from './request-context.ts';
import { healthRoutes, type ReadinessCheck } from './routes/health.ts';
import { mcpRoutes, type ServerHealthCheck } from './routes/mcps.ts';
import { projectRoutes } from './routes/projects.ts';
import { spaceRoutes } from './routes/spaces.ts';
import { taskEventRoutes } from './routes/task-events.ts';
import { taskRoutes } from './routes/tasks.ts';

export interface AppDeps {
  log: Logger;
  metrics: Metrics;
  metricsRegistry: MetricsRegistry;
  tokens: TokenService;
  projects: ProjectService;
  registry: Registry;
  bindings: SpaceBindings;
  tasks: TaskService;
  results: ResultService;
  feed: TaskEventFeed;
  checkServerHealth: ServerHealthCheck;
  readinessChecks: Record<string, ReadinessCheck>;
  maxRequestBytes: number;
  sseHeartbeatMs: number;
}

export function createApp(deps: AppDeps): Koa {
  const app = new Koa();
  app.proxy = true;
  // Errors are logged once, by the problem middleware, with the request id.
  app.silent = true;

  const auth = authenticate(deps.tokens);
  const routers = [
    projectRoutes(deps),
    spaceRoutes(deps),
    mcpRoutes({ registry: deps.registry, projects: deps.projects, checkHealth: deps.checkServerHealth }),
    taskEventRoutes({ tasks: deps.tasks, feed: deps.feed, heartbeatMs: deps.sseHeartbeatMs }),
    taskRoutes(deps),
  ];
  const health = healthRoutes({ checks: deps.readinessChecks, metricsRegistry: deps.metricsRegistry });

  app.use(problemMiddleware({ log: deps.log, mapError: domainProblem }));
  app.use(noSniff());
  app.use(requestContext({ log: deps.log, metrics: deps.metrics }));
  app.use(health.routes());
  app.use((ctx, next) => (ctx.path === '/v1' || ctx.path.startsWith('/v1/') ? auth(ctx, next) : next()));
  app.use(jsonBody({ maxBytes: deps.maxRequestBytes }));
  for (const router of routers) app.use(router.routes()).use(router.allowedMethods());
  app.use(notFoundFallback());
  return app;
}

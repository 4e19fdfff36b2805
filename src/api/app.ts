import type Router from '@koa/router';
import Koa from 'koa';
import type { TokenService } from '../core/auth-tokens.ts';
import type { ApiKeys } from '../core/api-keys.ts';
import type { AuditLog } from '../core/audit-log.ts';
import type { VerifiedBearer } from '../core/bearer-verifier.ts';
import type { CallerScopes } from '../core/caller-scope.ts';
import type { AgentService } from '../core/agents.ts';
import type { AgentRunService } from '../core/agent-runs.ts';
import type { KnowledgeGraph } from '../core/knowledge-graph.ts';
import type { Limits } from '../core/limits.ts';
import type { ProjectService } from '../core/projects.ts';
import type { Registry } from '../core/registry.ts';
import type { ResultService } from '../core/results.ts';
import type { SpaceBindings } from '../core/space-bindings.ts';
import type { TaskEventFeed } from '../core/task-event-feed.ts';
import type { TaskService } from '../core/tasks.ts';
import type { UserDirectory } from '../core/users.ts';
import type { SignIn } from '../core/sign-in.ts';
import type { Logger } from '../lib/logger.ts';
import type { Metrics } from '../lib/metrics.ts';
import type { Registry as MetricsRegistry } from 'prom-client';
import { authenticate } from './authenticate.ts';
import { enterCallerScope } from './caller-scope.ts';
import { apiKeyRoutes } from './routes/api-keys.ts';
import { auditRoutes } from './routes/audit.ts';
import { agentRoutes } from './routes/agents.ts';
import { agentRunRoutes } from './routes/agent-runs.ts';
import { agentRunEventRoutes } from './routes/agent-run-events.ts';
import { domainProblem } from './domain-problems.ts';
import { jsonBody } from './json-body.ts';
import { noSniff } from './no-sniff.ts';
import { notFoundFallback, Problem, problemMiddleware } from './problem.ts';
import { requestContext } from './request-context.ts';
import { API_OPERATIONS, buildOpenApiDocument } from './openapi.ts';
import { docsRoutes } from './routes/docs.ts';
import { healthRoutes, type ReadinessCheck } from './routes/health.ts';
import { knowledgeGraphRoutes } from './routes/knowledge-graph.ts';
import { knowledgeGraphMcpRoutes } from './routes/knowledge-graph-mcp.ts';
import { mcpRoutes, type ServerHealthCheck } from './routes/mcps.ts';
import { authenticationLimits, limitPerAddress, limitPerUser } from './rate-limit.ts';
import { projectRoutes } from './routes/projects.ts';
import { authRoutes, meRoutes } from './routes/auth.ts';
import { spaceRoutes } from './routes/spaces.ts';
import { taskEventRoutes } from './routes/task-events.ts';
import { taskRoutes } from './routes/tasks.ts';
import { CONSENT_TOOL, consentTool } from './mcp/consent-tool.ts';
import { MEMORY_TOOLS, memoryTools } from './mcp/memory-tools-provider.ts';
import { agentTools } from './mcp/agent-tools.ts';
import { challengeWithResourceMetadata, mcpEndpointRoutes, protectedResourceRoutes } from './mcp/mcp-routes.ts';
import { registryTools } from './mcp/registry-tools.ts';
import type { ToolProvider } from './mcp/tool-provider.ts';

export interface AppDeps {
  log: Logger;
  metrics: Metrics;
  metricsRegistry: MetricsRegistry;
  /** Access tokens and API keys alike. */
  bearers: { verify(token: string): Promise<VerifiedBearer> };
  /** Access tokens only: sign-in links with them and publishes their keys. */
  tokens: TokenService;
  scopes: CallerScopes;
  apiKeys: ApiKeys;
  audit: AuditLog;
  users: UserDirectory;
  signIn: SignIn;
  projects: ProjectService;
  registry: Registry;
  bindings: SpaceBindings;
  tasks: TaskService;
  agents: AgentService;
  agentRuns: AgentRunService;
  results: ResultService;
  feed: TaskEventFeed;
  kg: KnowledgeGraph;
  limits: Limits;
  checkServerHealth: ServerHealthCheck;
  readinessChecks: Record<string, ReadinessCheck>;
  maxRequestBytes: number;
  /** Behind a reverse proxy that sets X-Forwarded-For: the client address comes from it. */
  trustProxy?: boolean;
  sseHeartbeatMs: number;
  /** The origin clients reach the API at (PUBLIC_URL); unset: each request's own. */
  publicUrl?: string;
  /** More tool sets for the MCP endpoint, listed after the built-in consent tool and the registry's tools. */
  mcpToolProviders?: ToolProvider[];
  /** The API's version, shown in the OpenAPI document. */
  version?: string;
}

/** A route as the router matches it: what the auth sweep walks. */
export interface RouteEntry {
  methods: string[];
  path: string;
  /** `bearer`: behind authentication (the tenancy sweep walks these); `none`: public (sign-in, docs, discovery). */
  auth: 'bearer' | 'none';
}

export type OrchestratorApp = Koa & { routeTable: RouteEntry[] };

/**
 * Puts `guards` in front of every route of the router, on the route itself: whatever path form the router matches
 * (any letter case, a trailing slash, encoded characters), the guards run before the handler. Middleware added with
 * router.use() or by testing the path before routing can disagree with the router's own matching; this cannot.
 */
function guardEveryRoute(router: Router<any>, guards: Koa.Middleware[]): void {
  for (const layer of router.stack) layer.stack.unshift(...guards);
}

/** The stream limit's slot, counted in the open-streams gauge from when it is granted until it is released. */

function countedStreams(openStream: Limits['openStream'], metrics: Metrics): Limits['openStream'] {
  return async (userId) => {
    const slot = await openStream(userId);
    if (!slot.decision.allowed) return slot;
    metrics.sseStreamsOpen.inc();
    let open = true;
    return {
      ...slot,
      release() {
        if (open) metrics.sseStreamsOpen.dec();
        open = false;
        return slot.release();
      },
    };
  };
}

/** A NUL in a path parameter or query value would reach Postgres, which cannot store it. */
const refuseNulInUrl: Koa.Middleware = (ctx, next) => {
  if (/%00/i.test(ctx.path) || /%00/i.test(ctx.querystring) || ctx.url.includes('\0')) {
    throw new Problem(400, 'NulCharacter', 'Bad Request', 'the URL has a NUL character (%00)');
  }
  return next();
};

export function createApp(deps: AppDeps): OrchestratorApp {
  const app = new Koa() as OrchestratorApp;
  // Per-address limits must not be keyed on a value the client picks: X-Forwarded-For is believed only behind a
  // proxy the operator names (TRUST_PROXY), and then only the address that proxy appended, not what came before it.
  app.proxy = deps.trustProxy ?? false;
  app.maxIpsCount = 1;
  // Errors are logged once, by the problem middleware, with the request id.
  app.silent = true;

  const { limits } = deps;
  const v1 = [
    projectRoutes(deps),
    spaceRoutes(deps),
    mcpRoutes({ registry: deps.registry, projects: deps.projects, users: deps.users, checkHealth: deps.checkServerHealth }),
    taskEventRoutes({ tasks: deps.tasks, feed: deps.feed, heartbeatMs: deps.sseHeartbeatMs, openStream: countedStreams(limits.openStream, deps.metrics) }),
    taskRoutes({ ...deps, limitSubmissions: limitPerUser(limits.submission) }),
    meRoutes(deps),
    apiKeyRoutes(deps),
    auditRoutes(deps),
    agentRoutes({ agents: deps.agents }),
    agentRunRoutes({ agentRuns: deps.agentRuns, limitSubmissions: limitPerUser(limits.submission) }),
    agentRunEventRoutes({ agentRuns: deps.agentRuns, heartbeatMs: deps.sseHeartbeatMs, openStream: countedStreams(limits.openStream, deps.metrics) }),
    knowledgeGraphRoutes(deps),
    knowledgeGraphMcpRoutes(deps),
  ];
  const mcpEndpoint = mcpEndpointRoutes({
    // The endpoint's own tools come first and keep their names; a registry tool named like one is listed as server__tool.
    providers: [
      consentTool({ tasks: deps.tasks }),
      memoryTools({ kg: deps.kg, projects: deps.projects, log: deps.log }),
      registryTools({ registry: deps.registry, tasks: deps.tasks, reservedNames: [CONSENT_TOOL, ...MEMORY_TOOLS] }),
      agentTools({ agents: deps.agents, agentRuns: deps.agentRuns }),
      ...(deps.mcpToolProviders ?? []),
    ],
    tasks: deps.tasks,
    results: deps.results,
    feed: deps.feed,
    log: deps.log,
    version: deps.version ?? '0.0.0',
    projects: deps.projects,
    publicUrl: deps.publicUrl,
  });
  v1.push(mcpEndpoint);
  // Bodies are read only for authenticated callers, and only within their request limit.
  const guards = [
    authenticate(deps.bearers, authenticationLimits(limits)),
    enterCallerScope(deps.scopes),
    limitPerUser(limits.request),
    jsonBody({ maxBytes: deps.maxRequestBytes }),
  ];
  // The MCP endpoint's 401 also says where its protected-resource metadata is, for MCP clients to discover sign-in.
  const mcpGuards = [challengeWithResourceMetadata(guards[0]!, deps.publicUrl), ...guards.slice(1)];
  for (const router of v1) guardEveryRoute(router, router === mcpEndpoint ? mcpGuards : guards);
  // Routes that answer without a bearer (sign-in, documents, discovery): limited per address, bodies bounded.
  const publicRouters: Router<any>[] = [
    docsRoutes({ document: () => buildOpenApiDocument(API_OPERATIONS, { version: deps.version ?? '0.0.0' }) }),
    authRoutes(deps),
    protectedResourceRoutes({ publicUrl: deps.publicUrl }),
  ];
  const health = healthRoutes({ checks: deps.readinessChecks, metricsRegistry: deps.metricsRegistry });
  // Requests with no user to count against count against their address: the health routes, and (at the end of the
  // chain) whatever no router answered. Failed authentications count through the hooks above.
  const perAddress = limitPerAddress(limits);
  guardEveryRoute(health, [perAddress]);
  for (const router of publicRouters) guardEveryRoute(router, [perAddress, jsonBody({ maxBytes: deps.maxRequestBytes })]);

  app.use(problemMiddleware({ log: deps.log, mapError: domainProblem }));
  app.use(noSniff());
  app.use(requestContext({ log: deps.log, metrics: deps.metrics }));
  app.use(refuseNulInUrl);
  app.use(health.routes());
  for (const router of publicRouters) app.use(router.routes()).use(router.allowedMethods());
  for (const router of v1) app.use(router.routes()).use(router.allowedMethods());
  app.use(notFoundFallback());
  app.use(perAddress);
  const table = (routers: Router<any>[], auth: RouteEntry['auth']): RouteEntry[] =>
    routers.flatMap((router) => router.stack.map((layer) => ({ methods: layer.methods.filter((m) => m !== 'HEAD'), path: String(layer.path), auth })));
  app.routeTable = [...table(v1, 'bearer'), ...table([health, ...publicRouters], 'none')];
  return app;
}

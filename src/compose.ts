import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type { Registry as MetricsRegistry } from 'prom-client';
import { createActivities } from '../activities/index.ts';
import type { Config } from './config.ts';
import { createArgumentValidator } from './core/argument-validation.ts';
import { createConfiguredTokenService } from './core/auth-tokens.ts';
import { createRefreshTokens } from './core/refresh-tokens.ts';
import { createSignIn } from './core/sign-in.ts';
import { githubProvider, huggingFaceProvider, type OAuthProvider } from './integrations/oauth/providers.ts';
import { createConcurrencySlots } from './core/concurrency-slots.ts';
import { createHealthStore } from './core/health-store.ts';
import { createKnowledgeGraph } from './core/knowledge-graph.ts';
import { createLimits, LIMIT_NAMES } from './core/limits.ts';
import { createAuditLog } from './core/audit-log.ts';
import { createApiKeys } from './core/api-keys.ts';
import { createBearerVerifier } from './core/bearer-verifier.ts';
import { createAuditRecorder, createCallerScopes } from './core/caller-scope.ts';
import { builtInStepKinds } from './core/agent-step-kinds.ts';
import { kgUpsertStepKind } from './core/kg-upsert-step-kind.ts';
import { createAgentService } from './core/agents.ts';
import { createAgentRunService, runEventLog, stepConsentEvents, type RunEvent } from './core/agent-runs.ts';
import { createAgentActivities } from '../activities/agent-runs.ts';
import { createTemporalAgentRunRunner } from './temporal/agent-run-runner.ts';
import { createProjectService } from './core/projects.ts';
import { createRegistry } from './core/registry.ts';
import { createResultService } from './core/results.ts';
import { createSpaceBindings, SpaceBindingUnusableError, tokenTransportAllowed } from './core/space-bindings.ts';
import { providerToken } from './core/identities.ts';
import { createActingAs } from './core/acting-as.ts';
import { createTaskEventFeed } from './core/task-event-feed.ts';
import { createTaskEvents, publishLoggedEvents } from './core/task-events.ts';
import { createTaskReconciler } from './core/task-reconciler.ts';
import { createTaskService } from './core/tasks.ts';
import { countActiveTasksByStatus } from './core/tasks-repository.ts';
import { TASK_STATUSES, TERMINAL_STATUSES } from './core/task-model.ts';
import { createUserDirectory, findUser } from './core/users.ts';
import { createDb } from './db/create-db.ts';
import { createBlobStore } from './integrations/blob-store-factory.ts';
import { classifyStage, createSpacesClient, legacySseUrlOf, mapSpaceTools, SpaceNotFoundError } from './integrations/huggingface/spaces.ts';
import { listTools } from './integrations/mcp/list-tools.ts';
import { probeEndpoint } from './integrations/mcp/probe.ts';
import { createMcpSessionPool } from './integrations/mcp/session-pool.ts';
import { createOutboundGuard } from './integrations/outbound-guard.ts';
import type { Logger } from './lib/logger.ts';
import { createMetrics, registerActiveTaskGauge } from './lib/metrics.ts';
import { isLoopbackUrl } from './lib/loopback-host.ts';
import { createSecretBox } from './lib/secret-box.ts';
import { createTemporalTaskRunner } from './temporal/task-runner.ts';
import { createStores } from './stores.ts';
import type { McpServer } from './core/registry.ts';

const ACTIVE_STATUSES = TASK_STATUSES.filter((s) => !TERMINAL_STATUSES.includes(s));

/**
 * Builds every client and service of one process from a Config. Called by src/main.ts (and by tests and the
 * bench, which build their own worlds the same way); nothing else constructs clients.
 */
export async function createWorld(config: Config, opts: { log: Logger; metricsRegistry: MetricsRegistry; baseDir?: string }) {
  const { log } = opts;
  const metrics = createMetrics(opts.metricsRegistry);
  const db = createDb(config.databaseUrl, { onConnectionError: (err) => log.warn({ err: err.message }, 'postgres connection lost; reconnecting on next use') });
  registerActiveTaskGauge(opts.metricsRegistry, () => countActiveTasksByStatus(db), ACTIVE_STATUSES);
  // Redis when REDIS_URL is set; without it, this process's memory (one process only: see src/stores.ts).
  const stores = createStores(config, log);
  const storesReady = stores.ready();
  const connection = await Connection.connect({ address: config.temporal.address });
  await storesReady;
  const client = new Client({ connection, namespace: config.temporal.namespace });

  const prefix = config.redisPrefix;
  const secrets = createSecretBox({ current: config.encryptionKey, previous: config.encryptionKeysPrevious });
  // Where a Space token may travel over plain http: this machine only, for local Spaces during development.
  const allowsPlainHttp = isLoopbackUrl;
  // A token whose subject is no user (deleted, or never ours) is refused, whatever its signature.
  const tokens = await createConfiguredTokenService(config.jwt, async (sub) => UUID.test(sub) && (await findUser(db, sub)) !== undefined);
  const audit = createAuditLog({ db });
  const { github, huggingface } = config.auth;
  const signInProviders: OAuthProvider[] = [...(github ? [githubProvider(github)] : []), ...(huggingface ? [huggingFaceProvider(huggingface)] : [])];
  const signIn = createSignIn({
    db,
    providers: signInProviders,
    secrets,
    tokens,
    refresh: createRefreshTokens({ db, ttlSeconds: config.auth.refreshTtlSeconds }),
    audit,
    publicUrl: config.auth.publicUrl,
    ...(config.auth.appUrl ? { appUrl: config.auth.appUrl } : {}),
  });
  const kg = createKnowledgeGraph({ db });
  // Who is calling (and through which API key) for the length of a request: services narrow and record by it.
  const scopes = createCallerScopes();
  const recordAudit = createAuditRecorder({ audit, scopes });
  const projects = createProjectService(db, { scopes, recordAudit });
  const users = createUserDirectory({ db, adminLogins: config.adminLogins, scopes });
  const apiKeys = createApiKeys({ db, projects, scopes, recordAudit, maxPerUser: config.apiKeys.maxPerUser, maxTtlMs: config.apiKeys.maxTtlMs });
  // Every request to a registered or bound URL goes through the guard; the Hub and the blob store are configuration.
  const outbound = createOutboundGuard({ allowlist: config.outbound.allowlist });
  const registry = createRegistry({
    db,
    cache: stores.cache,
    keyPrefix: prefix,
    projectMembers: (projectId) => projects.memberIds(projectId),
    scopes,
    recordAudit,
    allowsPlainHttp,
    checkTarget: outbound.checkUrl,
    discover: (endpoint) =>
      listTools({ ...endpoint, fetch: outbound.fetch }, { timeoutMs: config.task.probeTimeoutMs * 2 }).catch((err: unknown) => {
        // Callers get one generic answer; the reason stays here.
        log.info({ origin: new URL(endpoint.url).origin, err: { message: (err as Error).message, name: (err as Error).name } }, 'tool discovery failed');
        throw err;
      }),
  });
  const spaces = createSpacesClient({ hubUrl: config.huggingFace.endpoint, spaceFetch: outbound.fetch });
  const bindings = createSpaceBindings({
    db,
    secrets,
    allowsPlainHttp,
    projects,
    registry,
    spaces: {
      info: (id, token) => spaces.info(id, token).catch(notFoundAsUndefined),
      isReady: (stage) => classifyStage(stage) === 'ready',
      mapTools: mapSpaceTools,
    },
    checkTarget: outbound.checkUrl,
    recordAudit,
    hubTokenOf: (userId) => providerToken(db, secrets, userId, 'huggingface'),
    listTools: async ({ url, token }) => {
      if (token && !tokenTransportAllowed(url, allowsPlainHttp)) throw new Error('a Space token is only sent over https');
      return listTools(
        { url, transport: 'auto', sseUrl: legacySseUrlOf(url), fetch: outbound.fetch, ...(token ? { headers: { Authorization: `Bearer ${token}` } } : {}) },
        { timeoutMs: config.task.probeTimeoutMs * 2 },
      );
    },
  });
  const health = createHealthStore({ cache: stores.cache, keyPrefix: prefix });
  const slots = createConcurrencySlots({ store: stores.slots, maxGlobal: config.limits.maxConcurrentJobs, leaseMs: Math.max(config.task.heartbeatTimeoutMs * 2, 10_000) });
  const blobs = createBlobStore(config.results.store, {
    baseDir: opts.baseDir ?? process.cwd(),
    hfEndpoint: config.huggingFace.endpoint,
    hfToken: config.huggingFace.token,
  });
  const results = createResultService({
    db,
    cache: stores.resultCache,
    blobs,
    inlineMaxBytes: config.results.inlineMaxBytes,
    keyPrefix: prefix,
    onCacheError: (op, err, taskId) => {
      metrics.bestEffortFailures.inc({ op: `result_cache_${op}` });
      log.warn({ err: (err as Error).message, taskId, op }, 'result cache step skipped; results are read from Postgres');
    },
  });
  const events = createTaskEvents({
    db,
    publisher: stores.publisher,
    channelPrefix: prefix,
    onPublished: (type) => metrics.eventsPublished.inc({ type }),
    onPublishError: (err, e) => {
      metrics.bestEffortFailures.inc({ op: 'event_publish' });
      log.warn({ err: (err as Error).message, taskId: e.taskId, seq: e.seq }, 'event publish failed; followers will catch up from the log');
    },
  });
  const feed = createTaskEventFeed({ events, subscriber: stores.subscriber, channelPrefix: prefix });
  // Agent run logs are followed the same way, on their own channels, over the same subscriber connection.
  const runEventChannel = (runId: string) => `${prefix}agent-run-events:${runId}`;
  const runFeed = createTaskEventFeed({ events: runEventLog(db), subscriber: stores.subscriber, channelFor: runEventChannel });
  const publishRunEvents = (runId: string, written: RunEvent[]) =>
    publishLoggedEvents(stores.publisher, runEventChannel(runId), written, {
      timeoutMs: 1000,
      onPublished: (type) => metrics.eventsPublished.inc({ type: `run_${type}` }),
      onError: (err, e) => {
        metrics.bestEffortFailures.inc({ op: 'event_publish' });
        log.warn({ err: (err as Error).message, runId, seq: e.seq }, 'run event publish failed; followers will catch up from the log');
      },
    });
  const runnerPolicy = {
    consentTimeoutMs: config.task.consentTimeoutMs,
    retryInitialMs: config.task.retryInitialMs,
    retryMaxMs: config.task.retryMaxMs,
    probeTimeoutMs: config.task.probeTimeoutMs,
    heartbeatTimeoutMs: config.task.heartbeatTimeoutMs,
    spaceStartTimeoutMs: config.task.spaceStartTimeoutMs,
  };
  const runner = createTemporalTaskRunner({
    client,
    taskQueue: config.temporal.taskQueue,
    policy: runnerPolicy,
  });
  const limits = createLimits({
    store: stores.limits,
    keyPrefix: prefix,
    // Three missed heartbeats and the slot of a stream whose API died is free again.
    settings: { ...config.rateLimits, streamLeaseMs: Math.max(config.sseHeartbeatMs * 3, 5000) },
    onRejected: (limit) => metrics.rateLimitRejections.inc({ limit }),
    onStoreError: (limit, err) => log.warn({ limit, err: (err as Error).message }, 'limit store unavailable; letting the request through'),
  });
  for (const limit of LIMIT_NAMES) metrics.rateLimitRejections.inc({ limit }, 0);
  const argumentValidator = createArgumentValidator({
    onUnusableSchema: (tool, err) => log.warn({ tool, err: (err as Error).message }, 'input schema not usable; arguments go unchecked'),
  });
  const tasks = createTaskService({
    db,
    projects,
    registry,
    runner,
    events,
    results,
    validateArguments: argumentValidator.check,
    scopes,
    recordAudit,
    limits,
    onTransition: stepConsentEvents({ publishRunEvents }),
    onFinished: (status) => metrics.tasksTotal.inc({ outcome: status }),
    onStartFailed: (taskId, err) => log.warn({ taskId, err: (err as Error).message }, 'task stored but its workflow did not start; the reconciler will start it'),
  });
  // Step kinds beyond `tool`: registered here so a kind can use any service of this world.
  const stepKinds = builtInStepKinds();
  stepKinds.set('kg.upsert', kgUpsertStepKind({ kg }));
  const agents = createAgentService({
    db,
    projects,
    stepKinds,
    toolExists: async (tool, projectId) => (await registry.offerings(tool, projectId)).length > 0,
  });
  // Built here, started by the processes that run it (src/main.ts): tests start their own when they need one.
  const reconciler = createTaskReconciler({
    tasks,
    log: log.child({ component: 'task-reconciler' }),
    intervalMs: config.reconciler.intervalMs,
    graceMs: config.reconciler.graceMs,
    onStarted: (n) => metrics.tasksReconciled.inc(n),
  });

  /**
   * Checks outside a task: the oracle gets an MCP probe; a project's Space is looked at through the Hub API only, so a
   * sleeping Space stays asleep.
   */
  async function checkServerHealth(server: McpServer, space?: { projectId: string }): Promise<Record<string, unknown>> {
    const oracle = server.oracleUrl
      ? await probeEndpoint(
          { url: server.oracleUrl, transport: server.transport, fetch: outbound.fetch },
          // Without a user's token: a server acting as the user that asks for one (401/403) is up.
          { healthPath: server.healthPath ?? undefined, timeoutMs: config.task.probeTimeoutMs, authRequired: server.actsAs !== null },
        )
      : null;
    if (oracle) await health.record(server.id, 'oracle', oracle);
    if (!space) return { oracle };
    let creds;
    try {
      creds = await bindings.credentials(space.projectId, server.id);
    } catch (err) {
      // The oracle's health is still worth an answer; the binding says what is wrong with it.
      if (err instanceof SpaceBindingUnusableError) return { oracle, space: { error: err.message, code: err.code } };
      throw err;
    }
    if (!creds) return { oracle, space: null };
    if (!creds.spaceId) return { oracle, space: { url: creds.url, stage: null, note: 'bound by URL: its stage is unknown without waking it' } };
    try {
      const { stage } = await spaces.runtime(creds.spaceId, creds.token);
      return { oracle, space: { spaceId: creds.spaceId, stage, state: classifyStage(stage) } };
    } catch (err) {
      return { oracle, space: { spaceId: creds.spaceId, stage: null, error: err instanceof SpaceNotFoundError ? 'not found on the Hub' : 'the Hub did not answer' } };
    }
  }

  // Sized for one worker: a handful of sessions per endpoint and credentials, each carrying many concurrent calls.
  const sessions = config.mcpSessions.enabled
    ? createMcpSessionPool({ maxPerKey: 4, maxTotal: 256, maxCallsPerSession: 64, idleMs: config.mcpSessions.idleMs, connectTimeoutMs: config.task.probeTimeoutMs })
    : undefined;
  const agentRuns = createAgentRunService({
    db,
    projects,
    agents,
    stepKinds,
    taskEvents: events,
    results,
    taskConsent: tasks,
    runner: createTemporalAgentRunRunner({ client, taskQueue: config.temporal.taskQueue, policy: runnerPolicy, maxParallel: config.agentMaxParallel }),
    validateInput: (schema, input) => argumentValidator.check('agent input', [schema], input as Record<string, unknown>),
    runEventFeed: runFeed,
    limits,
    publishRunEvents,
  });
  const activities = {
    ...createAgentActivities({ agentRuns }),
    ...createActivities({
      db,
      tasks,
      registry,
      bindings,
      actingAs: createActingAs({ db, secrets, allowsPlainHttp }),
      health,
      slots,
      results,
      events,
      spaces,
      outboundFetch: outbound.fetch,
      ...(sessions ? { sessions } : {}),
      metrics,
      log: log.child({ component: 'activities' }),
      settings: {
        toolTimeoutMs: config.task.toolTimeoutMs,
        probeTimeoutMs: config.task.probeTimeoutMs,
        heartbeatEveryMs: Math.max(Math.min(config.task.heartbeatTimeoutMs / 3, 5000), 200),
        spaceStartTimeoutMs: config.task.spaceStartTimeoutMs,
        spacePollMs: config.task.spacePollMs,
        probeFreshMs: config.task.probeFreshMs,
      },
    }),
  };

  return {
    config,
    log,
    metrics,
    metricsRegistry: opts.metricsRegistry,
    db,
    /** How state outside Postgres is kept: 'redis' (shared) or 'in process' (this process alone). */
    storesMode: stores.mode,
    redis: stores.redis,
    limitsRedis: stores.limitsRedis,
    limits,
    connection,
    client,
    tokens,
    signIn,
    bearers: createBearerVerifier({ tokens, apiKeys }),
    users,
    projects,
    audit,
    scopes,
    apiKeys,
    kg,
    registry,
    bindings,
    results,
    events,
    feed,
    runFeed,
    tasks,
    agents,
    agentRuns,
    stepKinds,
    reconciler,
    slots,
    activities,
    checkServerHealth,
    readinessChecks: {
      postgres: async () => {
        await db.selectNoFrom((eb) => eb.val(1).as('one')).execute();
      },
      redis: stores.check,
      temporal: async () => {
        await connection.workflowService.getSystemInfo({});
      },
    },
    async close() {
      await reconciler.stop();
      await sessions?.close();
      await Promise.all([feed.close(), runFeed.close()]);
      await connection.close();
      stores.close();
      await db.destroy();
      await outbound.close();
    },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export type World = Awaited<ReturnType<typeof createWorld>>;

function notFoundAsUndefined(err: unknown): undefined {
  if (err instanceof SpaceNotFoundError) return undefined;
  throw err;
}

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

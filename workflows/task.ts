import {
  ApplicationFailure,
  ActivityFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import {
  consentSignal,
  decideConsentUpdate,
  NON_RETRYABLE_DISPATCH_ERRORS,
  PROVIDER_TOKEN_ERRORS,
  searchAttributes,
  SLOT_LOST,
  stateQuery,
  type AttemptOutcome,
  type ConsentDecision,
  type RouteTarget,
  type ResultRef,
  type TaskError,
  type TaskState,
  type TaskStatus,
  type TaskWorkflowInput,
} from './contracts.ts';

/** One try and 3 retries, for probes and dispatches alike. */
const MAX_ATTEMPTS = 4;

/** Bookkeeping retries back off to at most this, however long Postgres or Redis stay away. */
const BOOKKEEPING_MAX_INTERVAL_MS = 30_000;

/**
 * Waiting for a dispatch slot: the first retry comes soon, later ones back off to a cap that grows with the time
 * already waited (a tenth of it, within these bounds), so a short queue moves quickly and a wait of days stays a few
 * thousand history events.
 */
const SLOT_WAIT_FIRST_MS = 250;
const SLOT_WAIT_CAP_MIN_MS = 2_000;
const SLOT_WAIT_CAP_MAX_MS = 5 * 60_000;

/**
 * Workflows started with this patch do their bookkeeping in fewer steps: recording `routing` and planning in one local
 * activity, taking the slot and recording `running` in one, releasing the slot and storing an inline result in one,
 * and one search-attribute upsert per status change (none for the brief `routing`). Histories recorded before it
 * replay the old sequence (test/fixtures/histories/*.json); the new one has its own fixtures (*.fewer-steps.json).
 */
export const FEWER_STEPS_PATCH = 'fewer-bookkeeping-steps';

/**
 * One task: plan a route, then walk it — consent where needed, probe, wait for a concurrency slot, dispatch,
 * store. Routing rules live in the planRoute activity, so this code only walks the recorded plan.
 */
export async function taskWorkflow(input: TaskWorkflowInput): Promise<TaskState> {
  const { policy } = input;
  const state: TaskState = {
    status: 'queued',
    attempts: [],
    consent: input.consentToOracle ? 'given_at_submission' : 'not_needed',
  };
  let decision: ConsentDecision | undefined;
  // Decided once, before the first command: every later step takes the same branch, on replay too.
  const fewerSteps = patched(FEWER_STEPS_PATCH);
  // With fewer steps, a new target kind rides along with the next status upsert instead of an upsert of its own.
  let pendingTargetKind: string | undefined;

  const awaitingDecision = () => state.status === 'awaiting_consent' && decision === undefined;
  setHandler(stateQuery, () => state);
  setHandler(consentSignal, (d) => {
    if (awaitingDecision()) decision = d;
    else log.warn('consent signal ignored: task is not awaiting consent', { status: state.status });
  });
  setHandler(
    decideConsentUpdate,
    async (d) => {
      decision = d;
      await condition(() => state.consent !== 'pending');
      return state;
    },
    {
      validator: (_decision: ConsentDecision) => {
        if (!awaitingDecision()) throw new Error(`task is not awaiting consent (status: ${state.status})`);
      },
    },
  );

  const retry = {
    initialInterval: policy.retryInitialMs,
    maximumInterval: policy.retryMaxMs,
    backoffCoefficient: 2,
  };
  // Bookkeeping must outlast an outage of Postgres or Redis: a workflow that gave up would leave its row non-terminal
  // and its event stream open forever. So no attempt cap, and no scheduleToCloseTimeout (unlimited): each try is
  // bounded by startToClose, and the backoff is capped so the task resumes soon after the store is back.
  const bookkeepingRetry = {
    initialInterval: policy.retryInitialMs,
    maximumInterval: Math.min(policy.retryMaxMs, BOOKKEEPING_MAX_INTERVAL_MS),
    backoffCoefficient: 2,
    nonRetryableErrorTypes: ['TaskNotFound', 'ResultMissing'],
  };
  // A staged result is uploaded to the blob store, which can be slow and fail for its own reasons: a regular activity
  // whose tries stay capped, so a result the store keeps refusing ends as ResultNotStored (the output stays in
  // staging) instead of retrying forever.
  const uploader = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { ...bookkeepingRetry, maximumAttempts: 10 },
  });
  // Short Postgres/Redis steps run as local activities: no round trip through the server's task queue.
  const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '15s', retry: bookkeepingRetry });
  // 3 retries, as for dispatch: a Space that is restarting deserves the same patience as a flaky call.
  const prober = proxyActivities<Activities>({
    // A probe may wait for a sleeping Space to wake, heartbeating while it waits.
    startToCloseTimeout: policy.probeTimeoutMs * 2 + policy.spaceStartTimeoutMs,
    heartbeatTimeout: policy.heartbeatTimeoutMs,
    retry: { ...retry, maximumAttempts: MAX_ATTEMPTS, nonRetryableErrorTypes: ['TargetUnavailable'] },
  });

  const upsertStatus = (status: TaskStatus) => {
    if (!fewerSteps) return upsertSearchAttributes([{ key: searchAttributes.taskStatus, value: status }]);
    const kind = pendingTargetKind;
    pendingTargetKind = undefined;
    upsertSearchAttributes([{ key: searchAttributes.taskStatus, value: status }, ...(kind ? [{ key: searchAttributes.targetKind, value: kind }] : [])]);
  };
  const setStatus = async (status: TaskStatus, detail?: Record<string, unknown>) => {
    state.status = status;
    upsertStatus(status);
    await local.recordStatus({ taskId: input.taskId, state: { ...state }, detail });
  };
  /** Takes a slot if one is free; with fewer steps, the same local activity records `running` when it got one. */
  const tryAcquire = async (target: RouteTarget): Promise<boolean> => {
    if (!fewerSteps) return local.tryAcquireSlot({ taskId: input.taskId, target });
    const running = { server: target.serverName, kind: target.kind };
    if (!(await local.acquireSlotAndMarkRunning({ taskId: input.taskId, target, state: { ...state, status: 'running' }, detail: running }))) return false;
    state.status = 'running';
    upsertStatus('running');
    return true;
  };
  const record = (target: RouteTarget, outcome: AttemptOutcome, reason?: string, tries?: number) => {
    state.attempts.push({ kind: target.kind, server: target.serverName, outcome, reason, tries, at: new Date().toISOString() });
  };
  /**
   * Records the failure, then fails the workflow itself, typed by the task's error code. A failed task used to
   * complete its workflow ("Completed", green, in the Web UI); failing it makes it stand out in the list and lets an
   * operator filter by status. Nothing retries it: workflows here have no retry policy, and the failure is
   * non-retryable. The final state rides along as the failure's details, for anyone awaiting the result.
   */
  const fail = async (error: TaskError): Promise<never> => {
    state.error = error;
    await setStatus('failed');
    throw ApplicationFailure.create({ message: error.message, type: error.code, nonRetryable: true, details: [{ ...state }] });
  };

  /**
   * Takes a dispatch slot, waiting in the workflow when none is free: a local try, then a durable timer with capped,
   * jittered backoff (workflow Math.random is seeded, so replay draws the same). No activity executor is held while
   * waiting, the wait never fails the task and never spends a dispatch retry, and a cancel ends it at the timer.
   */
  const acquireSlot = async (target: RouteTarget): Promise<void> => {
    if (await tryAcquire(target)) return;
    await setStatus('queued', { waitingFor: 'a free dispatch slot' });
    const since = Date.now();
    let delay = SLOT_WAIT_FIRST_MS;
    for (;;) {
      await sleep(Math.round(delay / 2 + (Math.random() * delay) / 2));
      if (await tryAcquire(target)) return;
      const cap = Math.min(SLOT_WAIT_CAP_MAX_MS, Math.max(SLOT_WAIT_CAP_MIN_MS, (Date.now() - since) / 10));
      delay = Math.min(cap, delay * 2);
    }
  };

  /** Dispatches under a slot. A dispatch that lost its slot stopped its call: wait for a slot again and rerun it. */
  const dispatchUnderSlot = async (target: RouteTarget): Promise<ResultRef> => {
    const dispatcher = proxyActivities<Activities>({
      startToCloseTimeout: target.timeoutMs + 30_000,
      heartbeatTimeout: policy.heartbeatTimeoutMs,
      cancellationType: 'WAIT_CANCELLATION_COMPLETED',
      retry: { ...retry, maximumAttempts: MAX_ATTEMPTS, nonRetryableErrorTypes: NON_RETRYABLE_DISPATCH_ERRORS },
    });
    for (;;) {
      await acquireSlot(target);
      if (!fewerSteps) await setStatus('running', { server: target.serverName, kind: target.kind });
      try {
        return await dispatcher.dispatch({ taskId: input.taskId, projectId: input.projectId, tool: input.tool, target, requestId: input.requestId });
      } catch (err) {
        if (describeFailure(err).type !== SLOT_LOST) throw err;
        log.warn('dispatch slot lost; waiting for another', { server: target.serverName });
      }
    }
  };

  try {
    const routeInput = { taskId: input.taskId, projectId: input.projectId, tool: input.tool, heavy: input.heavy };
    let plan;
    if (fewerSteps) {
      // `routing` lasts milliseconds: logged and stored, but not worth a search-attribute upsert of its own.
      state.status = 'routing';
      plan = await local.recordRoutingAndPlan({ ...routeInput, state: { ...state } });
    } else {
      await setStatus('routing');
      plan = await local.planRoute(routeInput);
    }
    if (plan.targets.length === 0) {
      return await fail({ code: 'NoRoute', message: plan.note ?? `no enabled server offers the tool "${input.tool}"` });
    }

    // Failures that only the user can fix (link a provider account): when they are all that happened, the task fails
    // with their own code, so a client can tell the user what to do instead of showing a summary.
    const userFixable: TaskError[] = [];
    for (const [index, target] of plan.targets.entries()) {
      let waitedForConsent = false;
      state.target = { kind: target.kind, server: target.serverName };
      if (fewerSteps) pendingTargetKind = target.kind;
      else upsertSearchAttributes([{ key: searchAttributes.targetKind, value: target.kind }]);

      if (target.needsConsent && state.consent !== 'given_at_submission' && state.consent !== 'granted') {
        const deadline = new Date(Date.now() + policy.consentTimeoutMs);
        state.consent = 'pending';
        state.consentDeadline = deadline.toISOString();
        await setStatus('awaiting_consent', { server: target.serverName, deadline: state.consentDeadline });
        const decided = await condition(() => decision !== undefined, policy.consentTimeoutMs);
        waitedForConsent = true;
        state.consentDeadline = undefined;
        if (!decided) {
          state.consent = 'expired';
          record(target, 'consent_expired', 'no consent decision before the deadline');
          return await fail({
            code: 'ConsentExpired',
            message: `Running this task on the platform's ${target.serverName} server needs your consent, and none arrived before the deadline.`,
          });
        }
        state.consent = decision!.grant ? 'granted' : 'denied';
        if (!decision!.grant) {
          record(target, 'consent_denied', decision!.by ? `denied by ${decision!.by}` : 'denied');
          return await fail({
            code: 'ConsentDenied',
            message: `Your Space could not run this task, and running it on the platform's ${target.serverName} server was declined.`,
          });
        }
      }

      // An oracle seen healthy just before planning needs no probe — but only when reached at once: after a consent
      // wait or a failed earlier target, the record planning saw may be stale.
      const skipProbe = target.fresh === true && index === 0 && !waitedForConsent;
      const healthy = skipProbe ? ({ ok: true } as const) : await probeTarget(prober, input.taskId, input.projectId, target);
      if (!healthy.ok) {
        record(target, 'unhealthy', healthy.reason, healthy.tries);
        continue;
      }

      let ref: ResultRef | undefined;
      let storeReleases = false;
      try {
        ref = await dispatchUnderSlot(target);
      } catch (err) {
        if (isCancellation(err)) throw err;
        const { reason, type, tries, provider } = describeFailure(err);
        record(target, 'failed', reason, tries);
        if (type === 'TaskNotFound') return await fail({ code: 'TaskNotFound', message: reason });
        if (type !== undefined && PROVIDER_TOKEN_ERRORS.includes(type)) userFixable.push({ code: type, message: reason, ...(provider ? { provider } : {}) });
        continue;
      } finally {
        // Freed before the result is published, so a finished task never still holds a slot. Also after a cancel
        // while waiting: a try that acquired just before it must not keep the slot until its lease runs out. With
        // fewer steps, an inline result's store frees the slot itself, first thing.
        storeReleases = fewerSteps && ref !== undefined && ref.storage !== 'staged';
        if (!storeReleases) await CancellationScope.nonCancellable(() => local.releaseSlot({ taskId: input.taskId, target }));
      }
      record(target, 'succeeded');
      state.error = undefined;
      try {
        // An inline result is already in Postgres: finishing is quick bookkeeping. A staged one is uploaded,
        // which may be slow and is retried, so it gets a regular activity.
        const done = { taskId: input.taskId, ref, state: { ...state, status: 'succeeded' as const } };
        // Not cancellable, as a release alone is not: a cancel arriving now must not leave the slot held.
        if (storeReleases) await CancellationScope.nonCancellable(() => local.releaseSlotAndStoreResult({ ...done, target }));
        else await (ref.storage === 'staged' ? uploader : local).storeResult(done);
      } catch (err) {
        if (isCancellation(err)) throw err;
        // The output stays staged in Postgres: not lost, and not silently dropped.
        return await fail({
          code: 'ResultNotStored',
          message: `The tool finished, but its result could not be stored: ${describeFailure(err).reason}. The output is kept in staging.`,
        });
      }
      state.status = 'succeeded';
      upsertStatus('succeeded');
      return state;
    }
    if (userFixable.length > 0 && userFixable.length === state.attempts.length) return await fail(userFixable[0]!);
    return await fail({ code: 'AllTargetsFailed', message: summarize(state) });
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      if (state.target && state.attempts.at(-1)?.outcome !== 'canceled') {
        state.attempts.push({ kind: state.target.kind, server: state.target.server, outcome: 'canceled', at: new Date().toISOString() });
      }
      state.error = { code: 'Canceled', message: 'The task was canceled.' };
      await setStatus('canceled');
    });
    log.info('task canceled', { workflowId: workflowInfo().workflowId });
    throw err;
  }
}

async function probeTarget(
  prober: Pick<Activities, 'probe'>,
  taskId: string,
  projectId: string,
  target: RouteTarget,
): Promise<{ ok: true } | { ok: false; reason: string; tries?: number }> {
  try {
    await prober.probe({ taskId, projectId, target });
    return { ok: true };
  } catch (err) {
    if (isCancellation(err)) throw err;
    const { reason, tries } = describeFailure(err);
    return { ok: false, reason, tries };
  }
}

/** The failure's message and type; `tries` only when it is known exactly (every attempt was spent). */
function describeFailure(err: unknown): { reason: string; type?: string; tries?: number; provider?: string } {
  const exhausted = err instanceof ActivityFailure && err.retryState === 'MAXIMUM_ATTEMPTS_REACHED';
  const tries = exhausted ? MAX_ATTEMPTS : undefined;
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) {
    const detail = cause.details?.[0] as { provider?: unknown } | undefined;
    const provider = typeof detail?.provider === 'string' ? detail.provider : undefined;
    return { reason: cause.message, type: cause.type ?? undefined, tries, ...(provider ? { provider } : {}) };
  }
  if (cause instanceof Error) return { reason: cause.message, tries };
  return { reason: String(cause), tries };
}

/** A sentence a person can read: what was tried and why each try ended. */
function summarize(state: TaskState): string {
  const tries = state.attempts.map((a) => `${a.kind === 'space' ? 'your Space' : 'the oracle'} (${a.server}) ${a.outcome === 'unhealthy' ? 'was unavailable' : 'failed'}: ${a.reason ?? 'unknown reason'}`);
  return `No target could run the task. ${tries.join('; ')}.`;
}

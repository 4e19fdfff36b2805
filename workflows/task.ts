import {
  ApplicationFailure,
  ActivityFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import {
  consentSignal,
  decideConsentUpdate,
  NON_RETRYABLE_DISPATCH_ERRORS,
  searchAttributes,
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
  const bookkeeping = proxyActivities<Activities>({
    startToCloseTimeout: '30s',
    retry: { ...retry, maximumAttempts: 10, nonRetryableErrorTypes: ['TaskNotFound'] },
  });
  // Short Postgres/Redis steps run as local activities: no round trip through the server's task queue.
  const local = proxyLocalActivities<Activities>({ startToCloseTimeout: '15s', retry: { ...retry, maximumAttempts: 10 } });
  // 3 retries, as for dispatch: a Space that is restarting deserves the same patience as a flaky call.
  const prober = proxyActivities<Activities>({
    // A probe may wait for a sleeping Space to wake, heartbeating while it waits.
    startToCloseTimeout: policy.probeTimeoutMs * 2 + policy.spaceStartTimeoutMs,
    heartbeatTimeout: policy.heartbeatTimeoutMs,
    retry: { ...retry, maximumAttempts: MAX_ATTEMPTS, nonRetryableErrorTypes: ['TargetUnavailable'] },
  });
  // Waiting for a slot is not a failure: it never exhausts and never counts against dispatch retries.
  const slots = proxyActivities<Activities>({
    startToCloseTimeout: '7 days',
    heartbeatTimeout: policy.heartbeatTimeoutMs,
    retry: { initialInterval: '1s', maximumInterval: '10s' },
  });

  const setStatus = async (status: TaskStatus, detail?: Record<string, unknown>) => {
    state.status = status;
    upsertSearchAttributes([{ key: searchAttributes.taskStatus, value: status }]);
    await local.recordStatus({ taskId: input.taskId, state: { ...state }, detail });
  };
  const record = (target: RouteTarget, outcome: AttemptOutcome, reason?: string, tries?: number) => {
    state.attempts.push({ kind: target.kind, server: target.serverName, outcome, reason, tries, at: new Date().toISOString() });
  };
  const fail = async (error: TaskError): Promise<TaskState> => {
    state.error = error;
    await setStatus('failed');
    return state;
  };

  try {
    await setStatus('routing');
    const plan = await local.planRoute({ taskId: input.taskId, projectId: input.projectId, tool: input.tool, heavy: input.heavy });
    if (plan.targets.length === 0) {
      return await fail({ code: 'NoRoute', message: plan.note ?? `no enabled server offers the tool "${input.tool}"` });
    }

    for (const target of plan.targets) {
      state.target = { kind: target.kind, server: target.serverName };
      upsertSearchAttributes([{ key: searchAttributes.targetKind, value: target.kind }]);

      if (target.needsConsent && state.consent !== 'given_at_submission' && state.consent !== 'granted') {
        const deadline = new Date(Date.now() + policy.consentTimeoutMs);
        state.consent = 'pending';
        state.consentDeadline = deadline.toISOString();
        await setStatus('awaiting_consent', { server: target.serverName, deadline: state.consentDeadline });
        const decided = await condition(() => decision !== undefined, policy.consentTimeoutMs);
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

      const healthy = await probeTarget(prober, input.taskId, input.projectId, target);
      if (!healthy.ok) {
        record(target, 'unhealthy', healthy.reason, healthy.tries);
        continue;
      }

      if (!(await local.tryAcquireSlot({ taskId: input.taskId, target }))) {
        await setStatus('queued', { waitingFor: 'a free dispatch slot' });
        await slots.waitForSlot({ taskId: input.taskId, target });
      }
      let ref: ResultRef;
      try {
        await setStatus('running', { server: target.serverName, kind: target.kind });
        const dispatcher = proxyActivities<Activities>({
          startToCloseTimeout: target.timeoutMs + 30_000,
          heartbeatTimeout: policy.heartbeatTimeoutMs,
          cancellationType: 'WAIT_CANCELLATION_COMPLETED',
          retry: { ...retry, maximumAttempts: MAX_ATTEMPTS, nonRetryableErrorTypes: NON_RETRYABLE_DISPATCH_ERRORS },
        });
        ref = await dispatcher.dispatch({
          taskId: input.taskId,
          projectId: input.projectId,
          tool: input.tool,
          target,
          requestId: input.requestId,
        });
      } catch (err) {
        if (isCancellation(err)) throw err;
        const { reason, type, tries } = describeFailure(err);
        record(target, 'failed', reason, tries);
        if (type === 'TaskNotFound') return await fail({ code: 'TaskNotFound', message: reason });
        continue;
      } finally {
        // Freed before the result is published, so a finished task never still holds a slot.
        await CancellationScope.nonCancellable(() => local.releaseSlot({ taskId: input.taskId, target }));
      }
      record(target, 'succeeded');
      state.error = undefined;
      try {
        // An inline result is already in Postgres: finishing is quick bookkeeping. A staged one is uploaded,
        // which may be slow and is retried, so it gets a regular activity.
        const storer = ref.storage === 'staged' ? bookkeeping : local;
        await storer.storeResult({ taskId: input.taskId, ref, state: { ...state, status: 'succeeded' } });
      } catch (err) {
        if (isCancellation(err)) throw err;
        // The output stays staged in Postgres: not lost, and not silently dropped.
        return await fail({
          code: 'ResultNotStored',
          message: `The tool finished, but its result could not be stored: ${describeFailure(err).reason}. The output is kept in staging.`,
        });
      }
      state.status = 'succeeded';
      upsertSearchAttributes([{ key: searchAttributes.taskStatus, value: 'succeeded' }]);
      return state;
    }
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
function describeFailure(err: unknown): { reason: string; type?: string; tries?: number } {
  const exhausted = err instanceof ActivityFailure && err.retryState === 'MAXIMUM_ATTEMPTS_REACHED';
  const tries = exhausted ? MAX_ATTEMPTS : undefined;
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return { reason: cause.message, type: cause.type ?? undefined, tries };
  if (cause instanceof Error) return { reason: cause.message, tries };
  return { reason: String(cause), tries };
}

/** A sentence a person can read: what was tried and why each try ended. */
function summarize(state: TaskState): string {
  const tries = state.attempts.map((a) => `${a.kind === 'space' ? 'your Space' : 'the oracle'} (${a.server}) ${a.outcome === 'unhealthy' ? 'was unavailable' : 'failed'}: ${a.reason ?? 'unknown reason'}`);
  return `No target could run the task. ${tries.join('; ')}.`;
}

import { ApplicationFailure, CancellationScope, condition, getExternalWorkflowHandle, isCancellation, proxyLocalActivities, startChild, ParentClosePolicy } from '@temporalio/workflow';
import type { AgentActivities } from '../activities/agent-runs.ts';
import type { AgentRunError, PlannedStep } from '../src/core/agent-model.ts';
import type { TaskPolicy } from './contracts.ts';
import type { taskWorkflow } from './task.ts';

/** Public name: running executions and operators use it. Never rename. */
export const AGENT_RUN_WORKFLOW_TYPE = 'agentRunWorkflow';

/** Ids and limits only: the definition and input stay in Postgres, outputs stay in the result store. */
export interface AgentRunWorkflowInput {
  runId: string;
  projectId: string;
  maxParallel: number;
  policy: TaskPolicy;
}

interface Unit {
  step: PlannedStep;
  item: number;
}

/**
 * One agent run: starts each step (each forEach item) once every step it needs has succeeded, at most `maxParallel`
 * at a time. A tool step is a child taskWorkflow over a real task row; other kinds run in an activity. The first
 * failed step fails the run: steps still running are canceled and steps not started are skipped.
 */
export async function agentRunWorkflow(input: AgentRunWorkflowInput): Promise<{ status: string; error?: AgentRunError }> {
  const local = proxyLocalActivities<AgentActivities>({
    startToCloseTimeout: '60s',
    retry: { initialInterval: input.policy.retryInitialMs, maximumInterval: 30_000, backoffCoefficient: 2, nonRetryableErrorTypes: ['AgentRunNotFound', 'StepInputInvalid'] },
  });
  const { steps } = await local.startAgentRun({ runId: input.runId });
  const status = new Map<string, 'pending' | 'running' | 'succeeded' | 'failed' | 'canceled'>(steps.map((s) => [s.id, 'pending']));
  const remaining = new Map<string, number>();
  const queue: Unit[] = [];
  const running = new Map<string, { workflowId?: string; done: Promise<void> }>();
  let failure: AgentRunError | undefined;
  const finished: string[] = [];

  const runUnit = async (unit: Unit): Promise<void> => {
    const key = `${unit.step.id}#${unit.item}`;
    if (unit.step.kind !== 'tool') {
      await local.runAgentStepKind({ runId: input.runId, stepId: unit.step.id, item: unit.item });
      return;
    }
    // Prepared and started without a cancel in between: a task row always gets its execution.
    const child = await CancellationScope.nonCancellable(async () => {
      const prepared = await local.prepareAgentStep({ runId: input.runId, stepId: unit.step.id, item: unit.item });
      running.get(key)!.workflowId = prepared.workflowId;
      return startChild<typeof taskWorkflow>('taskWorkflow', {
        workflowId: prepared.workflowId!,
        args: [{ taskId: prepared.taskId!, projectId: input.projectId, tool: prepared.tool!, heavy: prepared.heavy, consentToOracle: prepared.consentToOracle, policy: input.policy }],
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
        staticSummary: `step ${unit.step.id}${unit.item >= 0 ? `[${unit.item}]` : ''} of agent run ${input.runId}`,
      });
    });
    await child.result();
  };

  const launch = (unit: Unit) => {
    const key = `${unit.step.id}#${unit.item}`;
    const entry: { workflowId?: string; done: Promise<void> } = { done: Promise.resolve() };
    running.set(key, entry);
    entry.done = runUnit(unit).then(
      async () => {
        running.delete(key);
        const left = remaining.get(unit.step.id)! - 1;
        remaining.set(unit.step.id, left);
        if (left === 0 && status.get(unit.step.id) === 'running') {
          status.set(unit.step.id, 'succeeded');
          await local.recordAgentStep({ runId: input.runId, stepId: unit.step.id, status: 'succeeded' });
        }
        finished.push(key);
      },
      (err) => {
        running.delete(key);
        if (!failure && !isCancellation(err)) {
          status.set(unit.step.id, 'failed');
          failure = { code: 'StepFailed', step: unit.step.id, message: `step "${unit.step.id}"${unit.item >= 0 ? ` (item ${unit.item})` : ''} failed: ${reasonOf(err)}` };
        }
        finished.push(key);
      },
    );
  };

  const cancelRunning = async () => {
    for (const entry of running.values()) {
      if (entry.workflowId) await getExternalWorkflowHandle(entry.workflowId).cancel().catch(() => undefined);
    }
    await Promise.all([...running.values()].map((e) => e.done));
  };

  try {
    for (;;) {
      if (!failure) {
        for (const step of steps) {
          if (status.get(step.id) !== 'pending' || !step.needs.every((n) => status.get(n) === 'succeeded')) continue;
          status.set(step.id, 'running');
          const count = step.forEach ? (await local.expandAgentStep({ runId: input.runId, stepId: step.id })).count : 1;
          remaining.set(step.id, count);
          if (count === 0) {
            status.set(step.id, 'succeeded');
            await local.recordAgentStep({ runId: input.runId, stepId: step.id, status: 'succeeded' });
            continue;
          }
          await local.recordAgentStep({ runId: input.runId, stepId: step.id, status: 'running', items: step.forEach ? count : undefined });
          for (let i = 0; i < count; i++) queue.push({ step, item: step.forEach ? i : -1 });
        }
        while (queue.length > 0 && running.size < input.maxParallel) launch(queue.shift()!);
      }
      if (failure) {
        queue.length = 0;
        await cancelRunning();
        break;
      }
      if (running.size === 0 && queue.length === 0) {
        if ([...status.values()].every((s) => s === 'succeeded')) break;
        // Only reached if a pending step can never start (the definition was validated, so this is defensive).
        if (![...status.values()].some((s) => s === 'running')) break;
      }
      const seen = finished.length;
      await condition(() => finished.length > seen || failure !== undefined);
    }
  } catch (err) {
    if (!isCancellation(err)) throw err;
    await CancellationScope.nonCancellable(async () => {
      await cancelRunning();
      await local.finishAgentRun({ runId: input.runId, status: 'canceled', error: { code: 'Canceled', message: 'The run was canceled.' } });
    });
    throw err;
  }
  if (failure) {
    await local.finishAgentRun({ runId: input.runId, status: 'failed', error: failure });
    throw ApplicationFailure.create({ message: failure.message, type: failure.code, nonRetryable: true, details: [failure] });
  }
  await local.finishAgentRun({ runId: input.runId, status: 'succeeded' });
  return { status: 'succeeded' };
}

function reasonOf(err: unknown): string {
  let e: unknown = err;
  while (e instanceof Error && (e as { cause?: unknown }).cause) e = (e as { cause?: unknown }).cause;
  return e instanceof Error ? e.message : String(e);
}

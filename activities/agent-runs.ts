import { ApplicationFailure, Context } from '@temporalio/activity';
import type { AgentRunError, AgentRunStatus, AgentStepStatus, PreparedStep, RunPlan } from '../src/core/agent-model.ts';
import { StepInputError, type AgentRunService } from '../src/core/agent-runs.ts';
import { DomainError } from '../src/core/errors.ts';

/** Thin adapters over the run service for agentRunWorkflow; a step input that cannot be built is permanent. */
export function createAgentActivities(deps: { agentRuns: AgentRunService }) {
  const { agentRuns } = deps;
  const permanent = async <T>(fn: () => Promise<T>): Promise<T> => {
    try {
      return await fn();
    } catch (err) {
      if (err instanceof StepInputError || (err instanceof DomainError && err.code === 'AgentRunNotFound')) throw ApplicationFailure.nonRetryable(err.message, err.code);
      throw err;
    }
  };
  return {
    startAgentRun: (i: { runId: string }): Promise<RunPlan> => permanent(() => agentRuns.beginRun(i.runId)),
    expandAgentStep: async (i: { runId: string; stepId: string }): Promise<{ count: number }> => ({ count: await permanent(() => agentRuns.expandStep(i.runId, i.stepId)) }),
    // At the project's active-task limit this throws a retryable failure: the run's retry policy makes the step wait.
    prepareAgentStep: (i: { runId: string; stepId: string; item: number }): Promise<PreparedStep> =>
      permanent(() => agentRuns.prepareStep(i.runId, i.stepId, i.item, { firstAttempt: Context.current().info.attempt === 1 })),
    runAgentStepKind: (i: { runId: string; stepId: string; item: number }): Promise<void> => permanent(() => agentRuns.runStepKind(i.runId, i.stepId, i.item)),
    recordAgentStep: (i: { runId: string; stepId: string; status: AgentStepStatus; items?: number }): Promise<void> => agentRuns.recordStep(i.runId, i.stepId, i.status, i.items),
    finishAgentRun: (i: { runId: string; status: AgentRunStatus; error?: AgentRunError }): Promise<void> => agentRuns.finishRun(i.runId, i.status, i.error),
  };
}

export type AgentActivities = ReturnType<typeof createAgentActivities>;

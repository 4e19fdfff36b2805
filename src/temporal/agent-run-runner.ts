import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { AgentRunRunner } from '../core/agent-runs.ts';
import { searchAttributes, type TaskPolicy } from '../../workflows/contracts.ts';
import { AGENT_RUN_WORKFLOW_TYPE, type AgentRunWorkflowInput, type agentRunWorkflow } from '../../workflows/agent-run.ts';

/** The AgentRunRunner the run service uses, over a Temporal client. */
export function createTemporalAgentRunRunner(deps: { client: Client; taskQueue: string; policy: TaskPolicy; maxParallel: number }): AgentRunRunner {
  const { client } = deps;
  return {
    async start(run) {
      const input: AgentRunWorkflowInput = { runId: run.runId, projectId: run.projectId, maxParallel: deps.maxParallel, policy: deps.policy };
      try {
        await client.workflow.start<typeof agentRunWorkflow>(AGENT_RUN_WORKFLOW_TYPE, {
          taskQueue: deps.taskQueue,
          workflowId: run.workflowId,
          args: [input],
          // A repeated request joins the running execution; a finished one is never run again.
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          staticSummary: `agent ${run.agentName} for project ${run.projectId}`,
          typedSearchAttributes: [{ key: searchAttributes.projectId, value: run.projectId }],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return;
        throw err;
      }
    },
    async cancel(workflowId) {
      try {
        await client.workflow.getHandle(workflowId).cancel();
        return true;
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }
    },
  };
}

import { WorkflowExecutionAlreadyStartedError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { NotAwaitingConsentError, type TaskRunner } from '../core/tasks.ts';
import { decideConsentUpdate, searchAttributes, TASK_WORKFLOW_TYPE, type TaskPolicy, type TaskWorkflowInput } from '../../workflows/contracts.ts';
import type { taskWorkflow } from '../../workflows/task.ts';

/** The TaskRunner the task service uses, over a Temporal client. */
export function createTemporalTaskRunner(deps: { client: Client; taskQueue: string; policy: TaskPolicy }): TaskRunner {
  const { client } = deps;
  return {
    async start(task) {
      const input: TaskWorkflowInput = {
        taskId: task.taskId,
        projectId: task.projectId,
        tool: task.tool,
        heavy: task.heavy,
        consentToOracle: task.consentToOracle,
        requestId: task.requestId,
        policy: deps.policy,
      };
      try {
        await client.workflow.start<typeof taskWorkflow>(TASK_WORKFLOW_TYPE, {
          taskQueue: deps.taskQueue,
          workflowId: task.workflowId,
          args: [input],
          // A repeated submission joins the running execution; a finished one is never run again.
          workflowIdConflictPolicy: 'USE_EXISTING',
          workflowIdReusePolicy: 'REJECT_DUPLICATE',
          staticSummary: `${task.tool} for project ${task.projectId}${task.heavy ? ' (heavy)' : ''}`,
          typedSearchAttributes: [
            { key: searchAttributes.taskStatus, value: 'queued' },
            { key: searchAttributes.projectId, value: task.projectId },
            { key: searchAttributes.tool, value: task.tool },
          ],
        });
      } catch (err) {
        if (err instanceof WorkflowExecutionAlreadyStartedError) return;
        throw err;
      }
    },

    async decideConsent(workflowId, decision) {
      try {
        return await client.workflow.getHandle(workflowId).executeUpdate(decideConsentUpdate, { args: [decision] });
      } catch (err) {
        // The update's validator rejects it when the task is no longer waiting for a decision.
        if (err instanceof WorkflowUpdateFailedError) throw new NotAwaitingConsentError();
        throw err;
      }
    },

    async cancel(workflowId) {
      await client.workflow.getHandle(workflowId).cancel();
    },
  };
}

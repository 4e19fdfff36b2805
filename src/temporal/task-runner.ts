import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { NotAwaitingConsentError, type TaskRunner } from '../core/tasks.ts';
import { decideConsentUpdate, searchAttributes, TASK_WORKFLOW_TYPE, type TaskPolicy, type TaskWorkflowInput } from '../../workflows/contracts.ts';
import type { taskWorkflow } from '../../workflows/task.ts';

/** The TaskRunner the task service uses, over a Temporal client. */
export function createTemporalTaskRunner(deps: {
  client: Client;
  taskQueue: string;
  policy: TaskPolicy;
  /**
   * A start that has not answered by then gives up (default 10 s): an unreachable Temporal then neither holds a
   * submission open nor pins the reconciler's row lock; the task stays unstarted and the reconciler tries again.
   */
  startTimeoutMs?: number;
}): TaskRunner {
  const { client } = deps;
  const startTimeoutMs = deps.startTimeoutMs ?? 10_000;
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
        await client.withDeadline(Date.now() + startTimeoutMs, () => client.workflow.start<typeof taskWorkflow>(TASK_WORKFLOW_TYPE, {
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
        }));
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

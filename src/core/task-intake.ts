import type { Db } from '../db/create-db.ts';
import { LimitExceededError, type Limits } from './limits.ts';
import type { NewEvent, TaskEvent } from './task-events.ts';
import type { TaskRunner } from './tasks.ts';
import * as repo from './tasks-repository.ts';

/** A reconciler round stops after this many starts failed in a row: Temporal is away, the next round tries again. */
const MAX_FAILED_STARTS_PER_ROUND = 3;

export type StartableTask = Pick<repo.TaskRow, 'id' | 'workflow_id' | 'project_id' | 'tool' | 'heavy' | 'consent_to_oracle'>;

/**
 * How a new task comes to run, whoever creates it (a submission, a retry): checked against the project's active-task
 * limit, stored with its first event, then started. A task stored is a task accepted: if its start fails or never
 * happens, startUnstarted (the reconciler) starts it later.
 */
export function createTaskIntake(deps: {
  db: Db;
  runner: TaskRunner;
  events: { appendWhen(taskId: string, events: NewEvent[], change: (trx: Db) => Promise<boolean>): Promise<TaskEvent[] | undefined> };
  limits?: Pick<Limits, 'activeTasksQuota' | 'activeTasks'>;
  onStartFailed?: (taskId: string, err: unknown) => void;
}) {
  const { db } = deps;

  return {
    /**
     * Refuses when the project's active tasks plus `adding` would pass its limit.
     * Count and insert are two statements, not one locked transaction: submissions racing for the project's last slot
     * can overshoot it by as many as run at once. Holding a per-project lock through the commit would make the limit
     * exact but queue every submission to a project behind one commit at a time (one bench run with it: submit p50
     * 1.4× that with limits off).
     */
    async checkActiveTasks(projectId: string, adding: number): Promise<void> {
      const limits = deps.limits;
      if (limits?.activeTasksQuota === undefined) return;
      const decision = limits.activeTasks((await repo.countActiveTasks(db, projectId)) + adding - 1);
      if (!decision.allowed) throw new LimitExceededError(decision);
    },

    /** The task row and its first event, in one transaction; false (and nothing written) when the insert did nothing. */
    async insertWithFirstEvent(id: string, insert: (trx: Db) => Promise<boolean>, retryOf?: string): Promise<boolean> {
      const written = await deps.events.appendWhen(id, [{ type: 'status', data: { status: 'queued', ...(retryOf ? { retryOf } : {}) } }], insert);
      return written !== undefined;
    },

    /**
     * Starts the task's workflow and records that it did. A failed start is not the caller's failure: the task is
     * stored, so it stays queued and the reconciler starts it.
     */
    async start(task: StartableTask, requestId?: string): Promise<boolean> {
      try {
        await deps.runner.start({
          taskId: task.id,
          workflowId: task.workflow_id,
          projectId: task.project_id,
          tool: task.tool,
          heavy: task.heavy,
          consentToOracle: task.consent_to_oracle,
          requestId,
        });
      } catch (err) {
        deps.onStartFailed?.(task.id, err);
        return false;
      }
      await repo.markWorkflowStarted(db, task.id);
      return true;
    },

    /**
     * Starts the workflows of tasks accepted more than `olderThanMs` ago whose start never happened (the API died
     * after storing them, or Temporal was away). Safe on several replicas at once: each task is locked while it is
     * started (others skip it), and a start joins an execution that already exists.
     */
    async startUnstarted(opts: { olderThanMs: number; limit: number }): Promise<{ found: number; started: number; failed: number }> {
      const ids = await repo.findUnstartedTaskIds(db, opts);
      let started = 0;
      let failed = 0;
      let failedInARow = 0;
      for (const id of ids) {
        if (failedInARow >= MAX_FAILED_STARTS_PER_ROUND) break;
        try {
          const did = await db.transaction().execute(async (trx) => {
            const row = await repo.lockUnstartedTask(trx, id, { skipLocked: true });
            if (!row) return false;
            await deps.runner.start({ taskId: row.id, workflowId: row.workflow_id, projectId: row.project_id, tool: row.tool, heavy: row.heavy, consentToOracle: row.consent_to_oracle });
            await repo.markWorkflowStarted(trx, id);
            return true;
          });
          if (did) started++;
          failedInARow = 0;
        } catch (err) {
          failed++;
          failedInARow++;
          deps.onStartFailed?.(id, err);
        }
      }
      return { found: ids.length, started, failed };
    },
  };
}

export type TaskIntake = ReturnType<typeof createTaskIntake>;

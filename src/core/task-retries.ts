import { randomUUID } from 'node:crypto';
import type { Db } from '../db/create-db.ts';
import type { TaskStatus } from './task-model.ts';
import { ConflictError, NotFoundError } from './errors.ts';
import { LimitExceededError, type Limits } from './limits.ts';
import type { RecordAudit } from './caller-scope.ts';
import type { ProjectService } from './projects.ts';
import { isUuid } from './projects.ts';
import type { TaskIntake } from './task-intake.ts';
import * as repo from './tasks-repository.ts';

const RETRYABLE_STATUSES: readonly TaskStatus[] = ['failed', 'canceled'];
/** Reruns of one bulk retry started at once: enough to overlap round trips, few enough to leave the pool to others. */
const RERUN_START_CONCURRENCY = 8;

export class TaskNotRetryableError extends ConflictError {
  constructor(status: string) {
    super('TaskNotRetryable', `only a failed or canceled task can be retried (status: ${status})`, { taskStatus: status });
  }
}

export class AlreadyRetriedError extends ConflictError {
  constructor(rerunId: string) {
    super('AlreadyRetried', `the task was already retried as task "${rerunId}"; retry that one instead`, { retriedAs: rerunId });
  }
}

/** Which tasks a bulk retry reruns. */
export interface RetryFilter {
  projectId: string;
  status?: 'failed' | 'canceled';
  tool?: string;
  since?: Date;
  /** At most this many per call (the route caps it); call again for the rest. */
  limit: number;
}

/**
 * Park and resume: a failed or canceled task is rerun as a new task with the same arguments, linked to it by
 * `retry_of`. A task is rerun at most once (a unique index), so a repeated or concurrent retry creates nothing and a
 * failed rerun is retried in turn.
 */
export function createTaskRetries(deps: {
  db: Db;
  projects: Pick<ProjectService, 'requireRole'>;
  intake: TaskIntake;
  limits?: Partial<Pick<Limits, 'submission'>>;
  recordAudit?: RecordAudit;
}) {
  const { db, intake } = deps;

  /** A new task with the same arguments as `source`; undefined when `source` already has a rerun. */
  async function rerun(userId: string, source: repo.RetrySource, requestId?: string): Promise<string | undefined> {
    const id = randomUUID();
    const values = {
      id,
      project_id: source.project_id,
      created_by: userId,
      tool: source.tool,
      arguments: JSON.stringify(source.arguments),
      heavy: source.heavy,
      consent_to_oracle: source.consent_to_oracle,
      idempotency_key: null,
      request_hash: null,
      workflow_id: `task-${id}`,
      status: 'queued',
      target: null,
      attempts: '[]',
      error: null,
      retry_of: source.id,
    };
    const inserted = await intake.insertWithFirstEvent(
      id,
      async (trx) => {
        if (!(await repo.insertRerun(trx, values))) return false;
        await deps.recordAudit?.({ action: 'task.retry', projectId: source.project_id, target: { type: 'task', id: source.id }, detail: { rerunId: id, tool: source.tool } }, trx);
        return true;
      },
      source.id,
    );
    if (!inserted) return undefined;
    await intake.start(values, requestId);
    return id;
  }

  return {
    /** The new task's id. Retrying a task again answers AlreadyRetried naming its rerun. */
    async retry(userId: string, taskId: string, opts: { requestId?: string } = {}): Promise<string> {
      const source = isUuid(taskId) ? await repo.findVisibleRetrySource(db, userId, taskId) : undefined;
      if (!source) throw new NotFoundError('Task', taskId);
      await deps.projects.requireRole(userId, source.project_id, 'member');
      if (!RETRYABLE_STATUSES.includes(source.status as TaskStatus)) throw new TaskNotRetryableError(source.status);
      const earlier = await repo.findRerunId(db, source.id);
      if (earlier) throw new AlreadyRetriedError(earlier);
      await intake.checkActiveTasks(source.project_id, 1);
      const id = await rerun(userId, source, opts.requestId);
      if (!id) throw new AlreadyRetriedError((await repo.findRerunId(db, source.id))!);
      return id;
    },

    /**
     * Reruns the project's failed or canceled tasks matching the filter that have no rerun yet, oldest first, at most
     * `filter.limit`. Each counts as a submission; over a limit nothing is rerun.
     */
    async retryMany(userId: string, filter: RetryFilter, opts: { requestId?: string } = {}): Promise<{ count: number; ids: string[] }> {
      await deps.projects.requireRole(userId, filter.projectId, 'member');
      const sources = await repo.listRetryCandidates(db, {
        projectId: filter.projectId,
        statuses: filter.status ? [filter.status] : [...RETRYABLE_STATUSES],
        tool: filter.tool,
        since: filter.since,
        limit: filter.limit,
      });
      if (sources.length === 0) return { count: 0, ids: [] };
      if (deps.limits?.submission) {
        const decision = await deps.limits.submission(userId, sources.length);
        if (!decision.allowed) throw new LimitExceededError(decision);
      }
      await intake.checkActiveTasks(filter.projectId, sources.length);
      const ids: string[] = [];
      const queue = [...sources];
      // A rerun another call made meanwhile comes back undefined and is left out.
      await Promise.all(
        Array.from({ length: Math.min(RERUN_START_CONCURRENCY, queue.length) }, async () => {
          for (let source = queue.shift(); source; source = queue.shift()) {
            const id = await rerun(userId, source, opts.requestId);
            if (id) ids.push(id);
          }
        }),
      );
      return { count: ids.length, ids };
    },
  };
}

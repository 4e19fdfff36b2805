import type { TaskStore } from '@modelcontextprotocol/sdk/experimental/tasks/interfaces.js';
import type { Result, Task } from '@modelcontextprotocol/sdk/types.js';
import { DomainError, NotFoundError } from '../../core/errors.ts';
import type { ResultService } from '../../core/results.ts';
import type { TaskService, TaskView } from '../../core/tasks.ts';
import { isFinished, toMcpTask, toolResultOf } from './task-mapping.ts';
import type { ProjectCaller } from './tool-provider.ts';

const LIST_PAGE = 50;

/**
 * The SDK's task store, over our tasks table and Temporal: nothing is kept in this process, so tasks/get,
 * tasks/result, tasks/list and tasks/cancel answer from any API replica, before and after a restart. Only the
 * caller's tasks in this endpoint's project are visible. Tasks are created by tools/call (a task submission), never
 * through the store, and results are written by the task's workflow, never by the store.
 */
export function projectTaskStore(deps: {
  tasks: Pick<TaskService, 'get' | 'list' | 'cancel'>;
  results: Pick<ResultService, 'describe'>;
  caller: ProjectCaller;
  publicUrl: string;
  /** How long tasks/cancel waits for the execution to end before it answers with the task as it then is. */
  cancelWaitMs?: number;
}): TaskStore & { view(taskId: string): Promise<TaskView | undefined> } {
  const { caller } = deps;

  async function view(taskId: string): Promise<TaskView | undefined> {
    try {
      const v = await deps.tasks.get(caller.userId, taskId);
      return v.projectId === caller.projectId ? v : undefined;
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
  }

  async function mustView(taskId: string): Promise<TaskView> {
    const v = await view(taskId);
    if (!v) throw new NotFoundError('Task', taskId);
    return v;
  }

  return {
    view,

    createTask() {
      return Promise.reject(new Error('tasks are created by tools/call'));
    },

    async getTask(taskId): Promise<Task | null> {
      const v = await view(taskId);
      return v ? toMcpTask(v) : null;
    },

    storeTaskResult() {
      return Promise.reject(new Error('task results are stored by the task workflow'));
    },

    async getTaskResult(taskId): Promise<Result> {
      const v = await mustView(taskId);
      return toolResultOf(v, v.status === 'succeeded' ? await deps.results.describe(v.id) : undefined, deps.publicUrl);
    },

    async updateTaskStatus(taskId, status) {
      // The only status a client sets is cancelled (tasks/cancel); every other transition is the workflow's.
      if (status !== 'cancelled') return;
      await deps.tasks.cancel(caller.userId, (await mustView(taskId)).id);
      // Cancelling an execution is asynchronous: wait briefly so the answer shows the task cancelled.
      const deadline = Date.now() + (deps.cancelWaitMs ?? 10_000);
      while (Date.now() < deadline && !isFinished(await mustView(taskId))) await new Promise((r) => setTimeout(r, 100));
    },

    async listTasks(cursor) {
      const page = await deps.tasks.list(caller.userId, { projectId: caller.projectId, limit: LIST_PAGE, ...(cursor ? { cursor } : {}) });
      return { tasks: page.items.map(toMcpTask), ...(page.nextCursor ? { nextCursor: page.nextCursor } : {}) };
    },
  };
}

/** A domain error's message is written for callers (it never carries internals): fit to show an MCP client. */
export function callerMessage(err: unknown): string | undefined {
  return err instanceof DomainError ? `${err.code}: ${err.message}` : undefined;
}

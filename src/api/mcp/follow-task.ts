import type { RequestHandlerExtra } from '@modelcontextprotocol/sdk/shared/protocol.js';
import { type CallToolResult, ErrorCode, McpError, type ServerNotification, type ServerRequest } from '@modelcontextprotocol/sdk/types.js';
import type { TaskEventFeed } from '../../core/task-event-feed.ts';
import type { TaskEvent } from '../../core/task-events.ts';
import type { TaskView } from '../../core/tasks.ts';
import type { Logger } from '../../lib/logger.ts';
import { toMcpTask } from './task-mapping.ts';

type Extra = RequestHandlerExtra<ServerRequest, ServerNotification>;

/**
 * Waits for a task to end while the caller's request stays open: the tool's progress becomes MCP progress
 * notifications (when the request carries a progress token), each status change a log message, and the end the
 * tool's result. A client that gives up (cancels the request or drops the connection) stops the wait, not the task.
 */
export async function followTask(opts: {
  taskId: string;
  store: { view(taskId: string): Promise<TaskView | undefined>; getTaskResult(taskId: string): Promise<unknown> };
  feed: TaskEventFeed;
  extra: Extra;
  log: Logger;
}): Promise<CallToolResult> {
  const { taskId, extra } = opts;
  const progressToken = extra._meta?.progressToken;
  // MCP progress must grow with every notification; a retried dispatch starts its own count again, so only
  // values past the highest sent are forwarded.
  let lastProgress = -Infinity;
  const notify = (n: ServerNotification) =>
    extra.sendNotification(n).catch((err: unknown) => opts.log.debug({ err: (err as Error).message, taskId }, 'notification not delivered'));

  const onEvent = async (e: TaskEvent) => {
    if (e.type === 'progress' && progressToken !== undefined && typeof e.data.progress === 'number' && e.data.progress > lastProgress) {
      lastProgress = e.data.progress;
      await notify({
        method: 'notifications/progress',
        params: {
          progressToken,
          progress: e.data.progress,
          ...(typeof e.data.total === 'number' ? { total: e.data.total } : {}),
          ...(typeof e.data.message === 'string' ? { message: e.data.message } : {}),
        },
      });
    } else if (e.type === 'status') {
      const view = await opts.store.view(taskId);
      if (view) await notify({ method: 'notifications/message', params: { level: view.status === 'awaiting_consent' ? 'warning' : 'info', logger: 'orchestrator', data: { taskId, status: e.data.status, message: toMcpTask(view).statusMessage } } });
    }
  };
  await opts.feed.follow(taskId, 0, onEvent, extra.signal);
  if (extra.signal.aborted) throw new McpError(ErrorCode.ConnectionClosed, 'the request ended before the task did');
  return (await opts.store.getTaskResult(taskId)) as CallToolResult;
}

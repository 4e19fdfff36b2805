import Router from '@koa/router';
import { z } from 'zod';
import { LimitExceededError, type StreamSlot } from '../../core/limits.ts';
import type { TaskEventFeed } from '../../core/task-event-feed.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { parseLastEventId, streamLoggedEvents } from '../sse.ts';

/**
 * SSE: a `snapshot` of the task first (no id, so it never moves the client's Last-Event-ID), then every logged
 * event after Last-Event-ID with `id:` = its seq, live, until the terminal status event. A Last-Event-ID past the
 * end of the log replays nothing; for a finished task the stream then closes right after the snapshot.
 */
export function taskEventRoutes(deps: { tasks: TaskService; feed: TaskEventFeed; heartbeatMs: number; openStream: (userId: string) => Promise<StreamSlot> }) {
  const router = new Router<AppState>({ prefix: '/v1/tasks' });

  router.get('/:id/events', async (ctx) => {
    const after = parseLastEventId(ctx.get('Last-Event-ID') || ctx.query.lastEventId) ?? 0;
    const task = await deps.tasks.get(ctx.state.user.id, ctx.params.id!);
    // The stream holds one of the user's slots until it closes; the heartbeat keeps the slot's lease alive.
    const slot = await deps.openStream(ctx.state.user.id);
    if (!slot.decision.allowed) throw new LimitExceededError(slot.decision);

    await streamLoggedEvents(ctx, {
      slot,
      heartbeatMs: deps.heartbeatMs,
      snapshot: task,
      follow: (onEvent, signal) => deps.feed.follow(task.id, after, onEvent, signal),
    });
  });

  return router;
}

export const taskEventOperations: ApiOperation[] = [
  {
    method: 'get', path: '/v1/tasks/{id}/events', operationId: 'streamTaskEvents', summary: "A task's events as Server-Sent Events", tags: ['tasks'], auth: 'bearer',
    description: 'First a `snapshot` event (the task), then every event after Last-Event-ID (`id:` is its sequence number), live, until the task ends. Reconnect with Last-Event-ID to resume.',
    params: z.object({ id: z.uuid() }),
    headers: z.object({ 'Last-Event-ID': z.string().regex(/^\d+$/).optional().describe('resume after this event') }),
    query: z.object({ lastEventId: z.string().regex(/^\d+$/).optional().describe('the same, for clients that cannot set headers (EventSource)') }),
    responses: { 200: { description: 'the event stream', contentType: 'text/event-stream', schema: z.string() } }, problems: [404, 429],
  },
];

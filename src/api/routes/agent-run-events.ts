import Router from '@koa/router';
import { z } from 'zod';
import type { AgentRunService } from '../../core/agent-runs.ts';
import { LimitExceededError, type StreamSlot } from '../../core/limits.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { parseLastEventId, streamLoggedEvents } from '../sse.ts';

/**
 * SSE for a run, shaped like a task's stream: a `snapshot` (the run, no id), then each logged event after Last-Event-ID
 * with `id:` = its seq, pushed live by the run event feed, until the run's terminal status event.
 */
export function agentRunEventRoutes(deps: { agentRuns: AgentRunService; heartbeatMs: number; openStream: (userId: string) => Promise<StreamSlot> }) {
  const router = new Router<AppState>({ prefix: '/v1/agent-runs' });

  router.get('/:id/events', async (ctx) => {
    const after = parseLastEventId(ctx.get('Last-Event-ID') || ctx.query.lastEventId) ?? 0;
    const run = await deps.agentRuns.get(ctx.state.user.id, ctx.params.id!);
    const slot = await deps.openStream(ctx.state.user.id);
    if (!slot.decision.allowed) throw new LimitExceededError(slot.decision);

    await streamLoggedEvents(ctx, {
      slot,
      heartbeatMs: deps.heartbeatMs,
      snapshot: run,
      follow: (onEvent, signal) => deps.agentRuns.followEvents(run.id, after, onEvent, signal),
    });
  });

  return router;
}

export const agentRunEventOperations: ApiOperation[] = [
  {
    method: 'get', path: '/v1/agent-runs/{id}/events', operationId: 'streamAgentRunEvents', summary: "A run's events as Server-Sent Events", tags: ['agents'], auth: 'bearer',
    description:
      'First a `snapshot` event (the run), then every logged event after Last-Event-ID (`id:` is its sequence number), pushed live, until the run ends: `status`, `step`, `step.awaiting_consent` (a step task waits for consent: step, taskId, target, consentDeadline), `step.consent` (the decision: granted, denied or expired) and `step.waiting` (a step held back by the active-task limit). Reconnect with Last-Event-ID to resume with no gap and no duplicate.',
    params: z.object({ id: z.string() }),
    headers: z.object({ 'Last-Event-ID': z.string().regex(/^\d+$/).optional().describe('resume after this event') }),
    query: z.object({ lastEventId: z.string().regex(/^\d+$/).optional().describe('the same, for clients that cannot set headers (EventSource)') }),
    responses: { 200: { description: 'the event stream', contentType: 'text/event-stream', schema: z.string() } }, problems: [404, 429],
  },
];

import Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import { TASK_STATUSES } from '../../core/task-model.ts';
import type { ResultService } from '../../core/results.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { AppState } from '../authenticate.ts';
import { Problem } from '../problem.ts';

const submitBody = z.strictObject({
  projectId: z.uuid(),
  tool: z.string().min(1).max(200),
  arguments: z.record(z.string(), z.unknown()).default({}),
  heavy: z.boolean().optional(),
  consentToOracle: z.boolean().optional(),
});
const listQuery = z.object({
  projectId: z.uuid().optional(),
  status: z.enum(TASK_STATUSES).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().max(200).optional(),
});
const consentBody = z.strictObject({ grant: z.boolean() });
/** Reruns per bulk call at most: enough to resume after an outage, small enough to answer within a request. */
export const MAX_RETRIES_PER_CALL = 500;
const retryManyBody = z.strictObject({
  projectId: z.uuid(),
  status: z.enum(['failed', 'canceled']).optional(),
  tool: z.string().min(1).max(200).optional(),
  since: z.iso.datetime({ offset: true }).optional(),
  limit: z.number().int().min(1).max(MAX_RETRIES_PER_CALL).default(MAX_RETRIES_PER_CALL),
});
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;

export function taskRoutes(deps: { tasks: TaskService; results: ResultService; limitSubmissions: Koa.Middleware }) {
  const router = new Router<AppState>({ prefix: '/v1/tasks' });
  const { tasks } = deps;

  router.post('/', deps.limitSubmissions, async (ctx) => {
    const body = submitBody.parse(ctx.request.body);
    const key = ctx.get('Idempotency-Key') || undefined;
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw new Problem(400, 'InvalidIdempotencyKey', 'Bad Request', 'Idempotency-Key must be 1-255 visible ASCII characters');
    }
    const { task, created } = await tasks.submit(ctx.state.user.id, body, { idempotencyKey: key, requestId: ctx.state.requestId });
    ctx.status = 202;
    ctx.set('Location', `/v1/tasks/${task.id}`);
    if (!created) ctx.set('Idempotent-Replayed', 'true');
    ctx.body = task;
  });

  // Each rerun counts as a submission: the service charges the whole batch at once, so no per-request guard here.
  router.post('/retry', async (ctx) => {
    const { since, ...filter } = retryManyBody.parse(ctx.request.body);
    const done = await tasks.retryMany(ctx.state.user.id, { ...filter, ...(since ? { since: new Date(since) } : {}) }, { requestId: ctx.state.requestId });
    ctx.status = done.count > 0 ? 202 : 200;
    ctx.body = done;
  });

  router.post('/:id/retry', deps.limitSubmissions, async (ctx) => {
    const task = await tasks.retry(ctx.state.user.id, ctx.params.id!, { requestId: ctx.state.requestId });
    ctx.status = 202;
    ctx.set('Location', `/v1/tasks/${task.id}`);
    ctx.body = task;
  });

  router.get('/', async (ctx) => {
    ctx.body = await tasks.list(ctx.state.user.id, listQuery.parse(ctx.query));
  });

  router.get('/:id', async (ctx) => {
    ctx.body = await tasks.get(ctx.state.user.id, ctx.params.id!);
  });

  router.get('/:id/result', async (ctx) => {
    const task = await tasks.require(ctx.state.user.id, ctx.params.id!);
    if (task.status !== 'succeeded') {
      throw new Problem(409, 'ResultNotReady', 'Conflict', `the task has no result (status: ${task.status})`, { taskStatus: task.status });
    }
    const result = await deps.results.open(task.id);
    if (!result) throw new Problem(404, 'ResultNotFound', 'Not Found', 'the task succeeded but its result is missing');
    ctx.type = result.mediaType;
    ctx.length = result.size;
    ctx.set('Digest', `sha-256=${Buffer.from(result.sha256, 'hex').toString('base64')}`);
    ctx.set('ETag', `"${result.sha256}"`);
    ctx.body = result.body;
  });

  router.post('/:id/consent', async (ctx) => {
    const { grant } = consentBody.parse(ctx.request.body);
    ctx.body = await tasks.decideConsent(ctx.state.user.id, ctx.params.id!, { grant, by: ctx.state.user.login });
  });

  router.post('/:id/cancel', async (ctx) => {
    ctx.status = 202;
    ctx.body = await tasks.cancel(ctx.state.user.id, ctx.params.id!);
  });

  return router;
}

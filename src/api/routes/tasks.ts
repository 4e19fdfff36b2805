import Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import { TASK_STATUSES } from '../../core/task-model.ts';
import type { ResultService } from '../../core/results.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { retryManyResultSchema, taskPageSchema, taskSchema } from '../response-schemas.ts';
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

const taskParams = z.object({ id: z.uuid() });
const submitHeaders = z.object({ 'Idempotency-Key': z.string().regex(IDEMPOTENCY_KEY).optional().describe('the same key and body answer with the same task') });

export const taskOperations: ApiOperation[] = [
  {
    method: 'post', path: '/v1/tasks', operationId: 'submitTask', summary: 'Run a tool as a durable task', tags: ['tasks'], auth: 'bearer', headers: submitHeaders,
    description: 'Routes the call to a registered server that offers the tool, runs it with retries and stores the result. Answers at once; follow the task with GET /v1/tasks/{id} or its event stream.',
    body: submitBody, example: { projectId: '0b9d6c2e-4f7a-4c1e-9a51-2f0a7d3e8b11', tool: 'semgrep_scan', arguments: { path: 'src/' }, heavy: true, consentToOracle: false },
    responses: { 202: { description: 'the task, accepted', schema: taskSchema } }, problems: [403, 404, 409, 422, 503],
  },
  {
    method: 'post', path: '/v1/tasks/retry', operationId: 'retryTasks', summary: "Rerun a project's failed or canceled tasks", tags: ['tasks'], auth: 'bearer',
    body: retryManyBody, example: { projectId: '0b9d6c2e-4f7a-4c1e-9a51-2f0a7d3e8b11', status: 'failed', since: '2026-01-01T00:00:00Z', limit: 100 },
    responses: { 200: { description: 'nothing to rerun', schema: retryManyResultSchema }, 202: { description: 'the reruns, accepted', schema: retryManyResultSchema } }, problems: [403, 404, 503],
  },
  { method: 'post', path: '/v1/tasks/{id}/retry', operationId: 'retryTask', summary: 'Rerun a failed or canceled task as a new task', tags: ['tasks'], auth: 'bearer', params: taskParams, responses: { 202: { description: 'the new task', schema: taskSchema } }, problems: [403, 404, 409, 503] },
  { method: 'get', path: '/v1/tasks', operationId: 'listTasks', summary: 'Your tasks, newest first', tags: ['tasks'], auth: 'bearer', query: listQuery, responses: { 200: { description: 'a page of tasks', schema: taskPageSchema } }, problems: [404] },
  { method: 'get', path: '/v1/tasks/{id}', operationId: 'getTask', summary: 'A task: status, route, attempts, result', tags: ['tasks'], auth: 'bearer', params: taskParams, responses: { 200: { description: 'the task', schema: taskSchema } }, problems: [404] },
  {
    method: 'get', path: '/v1/tasks/{id}/result', operationId: 'getTaskResult', summary: "A succeeded task's result, as stored", tags: ['tasks'], auth: 'bearer', params: taskParams,
    responses: { 200: { description: 'the result bytes in their media type (usually application/json); Digest and ETag carry its sha-256', contentType: '*/*' } }, problems: [404, 409, 410],
  },
  {
    method: 'post', path: '/v1/tasks/{id}/consent', operationId: 'decideConsent', summary: 'Grant or deny running on the platform instead of your Space', tags: ['tasks'], auth: 'bearer', params: taskParams,
    body: consentBody, example: { grant: true }, responses: { 200: { description: 'the task', schema: taskSchema } }, problems: [403, 404, 409],
  },
  { method: 'post', path: '/v1/tasks/{id}/cancel', operationId: 'cancelTask', summary: 'Cancel a task', tags: ['tasks'], auth: 'bearer', params: taskParams, responses: { 202: { description: 'the task, cancel requested', schema: taskSchema } }, problems: [403, 404, 409] },
];

import Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import type { AgentRunService } from '../../core/agent-runs.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { Problem } from '../problem.ts';

const startBody = z.strictObject({ input: z.unknown().optional() });
const consentBody = z.strictObject({ grant: z.boolean() });
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,255}$/;
const runView = z.object({ id: z.string(), projectId: z.string(), agent: z.string(), version: z.number(), status: z.string(), steps: z.array(z.object({ id: z.string(), status: z.string() }).passthrough()) }).passthrough();

export const agentRunOperations: ApiOperation[] = [
  {
    method: 'post', path: '/v1/projects/{id}/agents/{name}/runs', operationId: 'startAgentRun', summary: "Run the agent's current version", tags: ['agents'], auth: 'bearer',
    params: z.object({ id: z.string(), name: z.string() }), headers: z.object({ 'Idempotency-Key': z.string().optional() }), body: startBody, example: { input: { text: 'hello' } },
    responses: { 202: { description: 'the run, accepted', schema: runView } }, problems: [400, 403, 404, 409, 422],
  },
  { method: 'get', path: '/v1/agent-runs/{id}', operationId: 'getAgentRun', summary: "A run: its status and each step's status and task ids", tags: ['agents'], auth: 'bearer', params: z.object({ id: z.string() }), responses: { 200: { description: 'the run', schema: runView } }, problems: [404] },
  {
    method: 'post', path: '/v1/agent-runs/{id}/consent', operationId: 'decideAgentRunConsent', summary: 'Grant or deny the platform running the steps that wait for consent', tags: ['agents'], auth: 'bearer',
    description: 'The decision goes to every step task of the run whose status is `awaiting_consent`, as `POST /v1/tasks/{id}/consent` would; 409 when none is waiting.',
    params: z.object({ id: z.string() }), body: consentBody, example: { grant: true }, responses: { 200: { description: 'the run', schema: runView } }, problems: [403, 404, 409],
  },
  { method: 'post', path: '/v1/agent-runs/{id}/cancel', operationId: 'cancelAgentRun', summary: 'Cancel a run and its running steps', tags: ['agents'], auth: 'bearer', params: z.object({ id: z.string() }), responses: { 202: { description: 'the run', schema: runView } }, problems: [403, 404, 409] },
];

export function agentRunRoutes(deps: { agentRuns: AgentRunService; limitSubmissions: Koa.Middleware }) {
  const router = new Router<AppState>();
  const { agentRuns } = deps;

  router.post('/v1/projects/:id/agents/:name/runs', deps.limitSubmissions, async (ctx) => {
    const { input } = startBody.parse(ctx.request.body ?? {});
    const key = ctx.get('Idempotency-Key') || undefined;
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) throw new Problem(400, 'InvalidIdempotencyKey', 'Bad Request', 'Idempotency-Key must be 1-255 visible ASCII characters');
    const { run, created } = await agentRuns.start(ctx.state.user.id, ctx.params.id!, ctx.params.name!, input ?? {}, { idempotencyKey: key });
    ctx.status = 202;
    ctx.set('Location', `/v1/agent-runs/${run.id}`);
    if (!created) ctx.set('Idempotent-Replayed', 'true');
    ctx.body = run;
  });

  router.get('/v1/agent-runs/:id', async (ctx) => {
    ctx.body = await agentRuns.get(ctx.state.user.id, ctx.params.id!);
  });

  router.post('/v1/agent-runs/:id/consent', async (ctx) => {
    const { grant } = consentBody.parse(ctx.request.body);
    ctx.body = await agentRuns.decideConsent(ctx.state.user.id, ctx.params.id!, { grant, by: ctx.state.user.login });
  });

  router.post('/v1/agent-runs/:id/cancel', async (ctx) => {
    ctx.status = 202;
    ctx.body = await agentRuns.cancel(ctx.state.user.id, ctx.params.id!);
  });

  return router;
}

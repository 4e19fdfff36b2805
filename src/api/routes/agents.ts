import Router from '@koa/router';
import { z } from 'zod';
import type { AgentService } from '../../core/agents.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { Problem } from '../problem.ts';
import { boundedText } from '../schemas.ts';

/** Bounds that keep a definition a thing a person wrote: the run workflow plans every step in its history. */
export const MAX_AGENT_STEPS = 100;
const AGENT_NAME = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const STEP_ID = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;

const ref = z.strictObject({ $ref: boundedText(500).min(1) });
export const agentStepSchema = z.strictObject({
  id: z.string().regex(STEP_ID, 'a letter, then letters, digits, _ or - (at most 64)'),
  kind: z.string().regex(/^[a-z][a-z0-9._-]{0,63}$/).optional(),
  tool: boundedText(200).min(1).optional(),
  arguments: z.record(boundedText(200), z.unknown()).default({}),
  dependsOn: z.array(z.string().regex(STEP_ID)).max(MAX_AGENT_STEPS).optional(),
  heavy: z.boolean().optional(),
  consentToOracle: z.boolean().optional(),
  forEach: ref.optional(),
});
const definitionFields = {
  description: boundedText(2000).optional(),
  inputSchema: z.record(boundedText(200), z.unknown()).optional(),
  steps: z.array(agentStepSchema).min(1).max(MAX_AGENT_STEPS),
};
const agentName = z.string().regex(AGENT_NAME, 'lowercase letters, digits, _ or - (at most 63), starting with a letter or digit');
export const createAgentBody = z.strictObject({ name: agentName, ...definitionFields });
export const updateAgentBody = z.strictObject({ name: agentName.optional(), ...definitionFields });
const projectParams = z.object({ id: z.string() });
const agentParams = z.object({ id: z.string(), name: z.string() });
const agentView = createAgentBody.extend({ version: z.number().int(), createdAt: z.string(), updatedAt: z.string() });

// No `{"$ref": …}` here: OpenAPI tools would take it for a reference of the document itself. The README shows them.
const example = {
  name: 'echo-twice',
  inputSchema: { type: 'object', properties: { text: { type: 'string' } } },
  steps: [
    { id: 'first', tool: 'echo', arguments: { text: 'hello' } },
    { id: 'second', tool: 'echo', dependsOn: ['first'], arguments: { text: 'again' } },
  ],
};

export const agentOperations: ApiOperation[] = [
  {
    method: 'post', path: '/v1/projects/{id}/agents', operationId: 'createAgent', summary: 'Create an agent (version 1)', tags: ['agents'], auth: 'bearer',
    description: 'Validated as a DAG: a duplicate or unknown step, an unknown reference, a cycle, an unknown tool or step kind is a 422 naming the step.',
    params: projectParams, body: createAgentBody, example, responses: { 201: { description: 'the agent', schema: agentView } }, problems: [400, 403, 404, 409, 422],
  },
  { method: 'get', path: '/v1/projects/{id}/agents', operationId: 'listAgents', summary: "The project's agents, current versions", tags: ['agents'], auth: 'bearer', params: projectParams, responses: { 200: { description: 'agents', schema: z.object({ items: z.array(agentView) }) } }, problems: [404] },
  { method: 'get', path: '/v1/projects/{id}/agents/{name}', operationId: 'getAgent', summary: "An agent's current version", tags: ['agents'], auth: 'bearer', params: agentParams, responses: { 200: { description: 'the agent', schema: agentView } }, problems: [404] },
  {
    method: 'put', path: '/v1/projects/{id}/agents/{name}', operationId: 'updateAgent', summary: 'Save a new version of an agent', tags: ['agents'], auth: 'bearer',
    params: agentParams, body: updateAgentBody, example: { steps: example.steps }, responses: { 200: { description: 'the agent, version incremented', schema: agentView } }, problems: [400, 403, 404, 422],
  },
  { method: 'delete', path: '/v1/projects/{id}/agents/{name}', operationId: 'deleteAgent', summary: 'Delete an agent (its runs stay readable)', tags: ['agents'], auth: 'bearer', params: agentParams, responses: { 204: { description: 'deleted' } }, problems: [403, 404] },
];

export function agentRoutes(deps: { agents: AgentService }) {
  const router = new Router<AppState>({ prefix: '/v1/projects/:id/agents' });
  const { agents } = deps;

  router.post('/', async (ctx) => {
    const body = createAgentBody.parse(ctx.request.body);
    const agent = await agents.create(ctx.state.user.id, ctx.params.id!, body);
    ctx.status = 201;
    ctx.set('Location', `/v1/projects/${ctx.params.id}/agents/${agent.name}`);
    ctx.body = agent;
  });

  router.get('/', async (ctx) => {
    ctx.body = await agents.list(ctx.state.user.id, ctx.params.id!);
  });

  router.get('/:name', async (ctx) => {
    ctx.body = await agents.get(ctx.state.user.id, ctx.params.id!, ctx.params.name!);
  });

  router.put('/:name', async (ctx) => {
    const { name, ...def } = updateAgentBody.parse(ctx.request.body);
    if (name !== undefined && name !== ctx.params.name) {
      // Renaming would orphan the versions under the old name; a new agent is a POST.
      throw new Problem(422, 'AgentNameMismatch', 'Unprocessable Content', `the body names "${name}", the path "${ctx.params.name}"`);
    }
    ctx.body = await agents.update(ctx.state.user.id, ctx.params.id!, ctx.params.name!, def);
  });

  router.delete('/:name', async (ctx) => {
    await agents.remove(ctx.state.user.id, ctx.params.id!, ctx.params.name!);
    ctx.status = 204;
  });

  return router;
}

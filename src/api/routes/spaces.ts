import Router from '@koa/router';
import { z } from 'zod';
import type { SpaceBindings } from '../../core/space-bindings.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { itemsOf, spaceBindingSchema } from '../response-schemas.ts';

const httpUrl = z.url({ protocol: /^https?$/ });
const bindBody = z
  .strictObject({
    spaceId: z.string().regex(/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/, 'must be owner/name').optional(),
    url: httpUrl.optional(),
    // Sent in an Authorization header: visible ASCII only, or the request could not even be made.
    token: z.string().min(1).max(4096).regex(/^[\x21-\x7e]+$/, 'must be visible ASCII characters').optional(),
  })
  .refine((b) => b.spaceId !== undefined || b.url !== undefined, { message: 'give spaceId (owner/name) or url', path: ['spaceId'] });

/** A project's own Hugging Face Space per server. The token is stored sealed and never returned. */
export function spaceRoutes(deps: { bindings: SpaceBindings }) {
  const router = new Router<AppState>({ prefix: '/v1/projects/:id/spaces' });

  router.get('/', async (ctx) => {
    ctx.body = { items: await deps.bindings.list(ctx.state.user.id, ctx.params.id!) };
  });

  router.put('/:mcp', async (ctx) => {
    const body = bindBody.parse(ctx.request.body);
    ctx.body = await deps.bindings.bind(ctx.state.user.id, ctx.params.id!, ctx.params.mcp!, body);
  });

  router.delete('/:mcp', async (ctx) => {
    await deps.bindings.unbind(ctx.state.user.id, ctx.params.id!, ctx.params.mcp!);
    ctx.status = 204;
  });

  return router;
}

const listParams = z.object({ id: z.uuid() });
const bindingParams = z.object({ id: z.uuid(), mcp: z.string().describe('the registered server name') });

export const spaceOperations: ApiOperation[] = [
  { method: 'get', path: '/v1/projects/{id}/spaces', operationId: 'listSpaceBindings', summary: "A project's Spaces, one per server", tags: ['spaces'], auth: 'bearer', params: listParams, responses: { 200: { description: 'the bindings', schema: itemsOf(spaceBindingSchema) } }, problems: [404] },
  {
    method: 'put', path: '/v1/projects/{id}/spaces/{mcp}', operationId: 'bindSpace', summary: "Bind the project's own Hugging Face Space for a server (admin)",
    description: 'Heavy tasks for this server then run on the Space. The token is stored sealed and never returned. Bound by `spaceId` alone with no token, the caller\'s Hub token from signing in with Hugging Face is used, if they did.', tags: ['spaces'], auth: 'bearer', params: bindingParams,
    body: bindBody, example: { spaceId: 'alice/semgrep-space', token: 'hf_xxxxxxxx' }, responses: { 200: { description: 'the binding', schema: spaceBindingSchema } }, problems: [403, 404, 422, 502],
  },
  { method: 'delete', path: '/v1/projects/{id}/spaces/{mcp}', operationId: 'unbindSpace', summary: "Forget the project's Space for a server (admin)", tags: ['spaces'], auth: 'bearer', params: bindingParams, responses: { 204: { description: 'unbound' } }, problems: [403, 404] },
];

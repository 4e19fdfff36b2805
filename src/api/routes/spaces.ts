import Router from '@koa/router';
import { z } from 'zod';
import type { SpaceBindings } from '../../core/space-bindings.ts';
import type { AppState } from '../authenticate.ts';

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

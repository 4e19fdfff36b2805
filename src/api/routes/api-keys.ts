import Router from '@koa/router';
import { z } from 'zod';
import type { ApiKeys } from '../../core/api-keys.ts';
import { PROJECT_ROLES } from '../../core/roles.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { boundedText } from '../schemas.ts';

const createBody = z.strictObject({
  name: boundedText(100).trim().min(1),
  projectId: z.uuid().optional(),
  role: z.enum(PROJECT_ROLES).optional(),
  expiresAt: z.iso.datetime({ offset: true }).optional(),
});
const keyParams = z.object({ id: z.string() });

const apiKey = z.object({
  id: z.string(),
  name: z.string(),
  projectId: z.uuid().nullable(),
  role: z.enum(PROJECT_ROLES).nullable(),
  createdAt: z.string(),
  expiresAt: z.string().nullable(),
  lastUsedAt: z.string().nullable(),
  revokedAt: z.string().nullable(),
});

export const apiKeyOperations: ApiOperation[] = [
  {
    method: 'post',
    path: '/v1/api-keys',
    operationId: 'createApiKey',
    summary: 'Create an API key (the key is shown once)',
    description: 'The key acts as you, limited to one project (projectId) and capped at a role (role) if given. Keys cannot create keys.',
    tags: ['api-keys'],
    auth: 'bearer',
    body: createBody,
    example: { name: 'ci', projectId: '7d3c1f0e-5b8a-4c2e-9f1a-2b3c4d5e6f70', role: 'member', expiresAt: '2030-01-01T00:00:00Z' },
    responses: { 201: { description: 'The key, with its secret `key` (orch_<id>_<secret>) shown this once', schema: apiKey.extend({ key: z.string() }) } },
    problems: [400, 401, 403, 404, 409, 422, 429],
  },
  {
    method: 'get',
    path: '/v1/api-keys',
    operationId: 'listApiKeys',
    summary: 'Your API keys, without their secrets',
    tags: ['api-keys'],
    auth: 'bearer',
    responses: { 200: { description: 'Newest first, revoked and expired ones included', schema: z.object({ items: z.array(apiKey) }) } },
    problems: [401, 429],
  },
  {
    method: 'delete',
    path: '/v1/api-keys/{id}',
    operationId: 'revokeApiKey',
    summary: 'Revoke an API key: refused from the next request on',
    tags: ['api-keys'],
    auth: 'bearer',
    params: keyParams,
    responses: { 204: { description: 'Revoked' } },
    problems: [401, 403, 404, 429],
  },
];

export function apiKeyRoutes(deps: { apiKeys: ApiKeys }) {
  const router = new Router<AppState>({ prefix: '/v1/api-keys' });
  const { apiKeys } = deps;

  router.post('/', async (ctx) => {
    const { expiresAt, ...body } = createBody.parse(ctx.request.body);
    const created = await apiKeys.create(ctx.state.user.id, { ...body, ...(expiresAt && { expiresAt: new Date(expiresAt) }) });
    ctx.status = 201;
    ctx.set('Cache-Control', 'no-store');
    ctx.body = created;
  });

  router.get('/', async (ctx) => {
    ctx.body = { items: await apiKeys.list(ctx.state.user.id) };
  });

  router.delete('/:id', async (ctx) => {
    await apiKeys.revoke(ctx.state.user.id, ctx.params.id!);
    ctx.status = 204;
  });

  return router;
}

import Router from '@koa/router';
import { z } from 'zod';
import { ACTS_AS_PROVIDERS } from '../../core/task-model.ts';
import type { ProjectService } from '../../core/projects.ts';
import type { McpServer, Registry } from '../../core/registry.ts';
import type { UserDirectory } from '../../core/users.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { itemsOf, mcpServerSchema, serverHealthSchema } from '../response-schemas.ts';
import { boundedText, NO_NUL } from '../schemas.ts';

const toolName = boundedText(200).min(1);

/**
 * A plain absolute path on the server's own origin. URL resolution turns "//host/x" and "/\host/x" into other
 * hosts, and ".." (also as %2e%2e) climbs out of any prefix a proxy routes on.
 */
function isPlainPath(p: string): boolean {
  if (!p.startsWith('/') || p.startsWith('//') || p.includes('\\')) return false;
  if (/[\s\x00-\x1f\x7f]/.test(p)) return false;
  const path = p.split(/[?#]/)[0]!;
  return !path.split('/').some((segment) => /^(\.|%2e){2}$/i.test(segment));
}
const healthPath = z.string().max(200).refine(isPlainPath, 'must be a plain path on the server, like /health');
const settings = {
  description: boundedText(2000).nullable().optional(),
  oracleUrl: z.url({ protocol: /^https?$/ }).max(2048).nullable().optional(),
  transport: z.enum(['auto', 'streamable-http', 'sse']).optional(),
  healthPath: healthPath.nullable().optional(),
  canRunOnUserSpace: z.boolean().optional(),
  fallbackToOracle: z.boolean().optional(),
  location: boundedText(100).nullable().optional(),
  // Bounded so every value fits its column (real, integer) with room to spare.
  cost: z.number().min(0).max(1_000_000).optional(),
  maxConcurrency: z.number().int().min(1).max(100_000).nullable().optional(),
  enabled: z.boolean().optional(),
  visibility: z.enum(['private', 'public']).optional(),
  // Each call carries the submitting user's token from this provider (null: none). Needs an https oracleUrl.
  actsAs: z.enum(ACTS_AS_PROVIDERS).nullable().optional(),
  heavyTools: z.array(toolName).max(1000).optional(),
  capabilities: z.record(toolName, z.array(boundedText(100).min(1)).max(100)).optional(),
  toolTimeouts: z.record(toolName, z.number().int().min(100).max(24 * 3_600_000)).optional(),
  tools: z
    .array(z.strictObject({ name: toolName, description: boundedText(10_000).optional(), inputSchema: z.record(z.string().regex(NO_NUL), z.unknown()).default({ type: 'object' }) }))
    .max(1000)
    .optional(),
};
const healthQuery = z.object({ projectId: z.uuid().optional() });
const registerBody = z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lowercase slug'), ...settings });
const patchBody = z.strictObject(settings);

export type ServerHealthCheck = (server: McpServer, space?: { projectId: string }) => Promise<Record<string, unknown>>;

/**
 * The shared registry. Everyone sees public servers and their own; only a server's owner or a platform admin may
 * change, refresh or remove it, and only an admin may make one public.
 */
export function mcpRoutes(deps: { registry: Registry; projects: ProjectService; users: UserDirectory; checkHealth: ServerHealthCheck }) {
  const router = new Router<AppState>({ prefix: '/v1/mcps' });
  const { registry, users } = deps;

  router.post('/', async (ctx) => {
    const server = await registry.register(await users.actor(ctx.state.user), registerBody.parse(ctx.request.body));
    ctx.status = 201;
    ctx.set('Location', `/v1/mcps/${server.id}`);
    ctx.body = server;
  });

  router.get('/', async (ctx) => {
    ctx.body = { items: await registry.list(await users.actor(ctx.state.user)) };
  });

  router.get('/:id', async (ctx) => {
    ctx.body = await registry.get(await users.actor(ctx.state.user), ctx.params.id!);
  });

  router.patch('/:id', async (ctx) => {
    ctx.body = await registry.update(await users.actor(ctx.state.user), ctx.params.id!, patchBody.parse(ctx.request.body));
  });

  router.delete('/:id', async (ctx) => {
    await registry.remove(await users.actor(ctx.state.user), ctx.params.id!);
    ctx.status = 204;
  });

  router.post('/:id/refresh', async (ctx) => {
    ctx.body = await registry.refresh(await users.actor(ctx.state.user), ctx.params.id!);
  });

  // With ?projectId=, also the project's Space for this server, as the Hub sees it (never woken by a check).
  router.get('/:id/health', async (ctx) => {
    const { projectId } = healthQuery.parse(ctx.query);
    if (projectId) await deps.projects.get(ctx.state.user.id, projectId);
    const server = await registry.get(await users.actor(ctx.state.user), ctx.params.id!);
    ctx.body = { server: server.name, ...(await deps.checkHealth(server, projectId ? { projectId } : undefined)) };
  });

  return router;
}

const serverParams = z.object({ id: z.string().describe('the server id or name') });

export const mcpOperations: ApiOperation[] = [
  {
    method: 'post', path: '/v1/mcps', operationId: 'registerMcpServer', summary: 'Register an MCP server (its tools are listed from the oracle URL)', tags: ['mcps'], auth: 'bearer',
    body: registerBody, example: { name: 'semgrep', oracleUrl: 'https://mcp.example.com/mcp', canRunOnUserSpace: true, fallbackToOracle: true, heavyTools: ['semgrep_scan'] },
    responses: { 201: { description: 'the server', schema: mcpServerSchema } }, problems: [403, 409, 422, 502],
  },
  { method: 'get', path: '/v1/mcps', operationId: 'listMcpServers', summary: 'Public servers and your own', tags: ['mcps'], auth: 'bearer', responses: { 200: { description: 'the servers', schema: itemsOf(mcpServerSchema) } } },
  { method: 'get', path: '/v1/mcps/{id}', operationId: 'getMcpServer', summary: 'One server with its tools', tags: ['mcps'], auth: 'bearer', params: serverParams, responses: { 200: { description: 'the server', schema: mcpServerSchema } }, problems: [404] },
  {
    method: 'patch', path: '/v1/mcps/{id}', operationId: 'updateMcpServer', summary: "Change a server's settings (owner or admin)", tags: ['mcps'], auth: 'bearer', params: serverParams,
    body: patchBody, example: { enabled: false, cost: 2.5 }, responses: { 200: { description: 'the server', schema: mcpServerSchema } }, problems: [403, 404, 409, 422],
  },
  { method: 'delete', path: '/v1/mcps/{id}', operationId: 'removeMcpServer', summary: 'Remove a server (owner or admin)', tags: ['mcps'], auth: 'bearer', params: serverParams, responses: { 204: { description: 'removed' } }, problems: [403, 404, 409] },
  { method: 'post', path: '/v1/mcps/{id}/refresh', operationId: 'refreshMcpServer', summary: "List the server's tools again", tags: ['mcps'], auth: 'bearer', params: serverParams, responses: { 200: { description: 'the server', schema: mcpServerSchema } }, problems: [403, 404, 422, 502, 503] },
  {
    method: 'get', path: '/v1/mcps/{id}/health', operationId: 'checkMcpServerHealth', summary: "Probe a server's oracle, and with projectId the project's Space", tags: ['mcps'], auth: 'bearer', params: serverParams,
    query: healthQuery, responses: { 200: { description: 'what each target answered', schema: serverHealthSchema } }, problems: [404, 502],
  },
];

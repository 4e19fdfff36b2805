import Router from '@koa/router';
import { z } from 'zod';
import type { ProjectService } from '../../core/projects.ts';
import type { McpServer, Registry } from '../../core/registry.ts';
import type { AppState } from '../authenticate.ts';

const toolName = z.string().min(1).max(200);

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
  description: z.string().max(2000).nullable().optional(),
  oracleUrl: z.url({ protocol: /^https?$/ }).nullable().optional(),
  transport: z.enum(['auto', 'streamable-http', 'sse']).optional(),
  healthPath: healthPath.nullable().optional(),
  canRunOnUserSpace: z.boolean().optional(),
  fallbackToOracle: z.boolean().optional(),
  location: z.string().max(100).nullable().optional(),
  cost: z.number().min(0).optional(),
  maxConcurrency: z.number().int().min(1).nullable().optional(),
  enabled: z.boolean().optional(),
  heavyTools: z.array(toolName).optional(),
  capabilities: z.record(toolName, z.array(z.string().min(1).max(100))).optional(),
  toolTimeouts: z.record(toolName, z.number().int().min(100)).optional(),
  tools: z
    .array(z.strictObject({ name: toolName, description: z.string().optional(), inputSchema: z.record(z.string(), z.unknown()).default({ type: 'object' }) }))
    .optional(),
};
const healthQuery = z.object({ projectId: z.uuid().optional() });
const registerBody = z.strictObject({ name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be a lowercase slug'), ...settings });
const patchBody = z.strictObject(settings);

export type ServerHealthCheck = (server: McpServer, space?: { projectId: string }) => Promise<Record<string, unknown>>;

export function mcpRoutes(deps: { registry: Registry; projects: ProjectService; checkHealth: ServerHealthCheck }) {
  const router = new Router<AppState>({ prefix: '/v1/mcps' });
  const { registry } = deps;

  router.post('/', async (ctx) => {
    const server = await registry.register(ctx.state.user.id, registerBody.parse(ctx.request.body));
    ctx.status = 201;
    ctx.set('Location', `/v1/mcps/${server.id}`);
    ctx.body = server;
  });

  router.get('/', async (ctx) => {
    ctx.body = { items: await registry.list() };
  });

  router.get('/:id', async (ctx) => {
    ctx.body = await registry.get(ctx.params.id!);
  });

  router.patch('/:id', async (ctx) => {
    ctx.body = await registry.update(ctx.params.id!, patchBody.parse(ctx.request.body));
  });

  router.delete('/:id', async (ctx) => {
    await registry.remove(ctx.params.id!);
    ctx.status = 204;
  });

  router.post('/:id/refresh', async (ctx) => {
    ctx.body = await registry.refresh(ctx.params.id!);
  });

  // With ?projectId=, also the project's Space for this server, as the Hub sees it (never woken by a check).
  router.get('/:id/health', async (ctx) => {
    const { projectId } = healthQuery.parse(ctx.query);
    if (projectId) await deps.projects.get(ctx.state.user.id, projectId);
    const server = await registry.get(ctx.params.id!);
    ctx.body = { server: server.name, ...(await deps.checkHealth(server, projectId ? { projectId } : undefined)) };
  });

  return router;
}

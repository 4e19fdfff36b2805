import Router from '@koa/router';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import type Koa from 'koa';
import { z } from 'zod';
import type { ProjectService } from '../../core/projects.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { Problem } from '../problem.ts';
import { createOrchestratorMcpServer, type McpServerDeps } from './orchestrator-mcp-server.ts';

export const MCP_PATH_PREFIX = '/mcp/projects';
const PROTECTED_RESOURCE = '/.well-known/oauth-protected-resource';

const projectParams = z.object({ projectId: z.string().describe('the project whose tools and tasks this endpoint serves') });
const jsonRpcMessage = z.object({ jsonrpc: z.literal('2.0'), method: z.string().optional(), id: z.union([z.string(), z.number()]).optional(), params: z.record(z.string(), z.unknown()).optional() });
const protectedResourceMetadata = z.object({
  resource: z.string(),
  resource_name: z.string(),
  bearer_methods_supported: z.array(z.string()),
});

const HOST = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * The origin clients use: PUBLIC_URL when set, else this request's own. The Host header is the client's to choose,
 * so only a plain host[:port] is echoed into links and headers.
 */
export function publicOrigin(ctx: Koa.Context, publicUrl: string | undefined): string {
  if (publicUrl) return publicUrl;
  return `${ctx.protocol}://${HOST.test(ctx.host) ? ctx.host : 'localhost'}`;
}

/**
 * The MCP endpoint's 401 names where its RFC 9728 metadata is (MCP authorization spec), so a client can discover how
 * to sign in. Wraps the shared authentication: only a refusal by authentication itself gets the parameter.
 */
export function challengeWithResourceMetadata(auth: Koa.Middleware, publicUrl: string | undefined): Koa.Middleware {
  return async function authenticateMcp(ctx, next) {
    let passed = false;
    try {
      await auth(ctx, () => {
        passed = true;
        return next();
      });
    } catch (err) {
      if (!passed && err instanceof Problem && err.status === 401) {
        const metadata = `resource_metadata="${publicOrigin(ctx, publicUrl)}${PROTECTED_RESOURCE}${ctx.path.replace(/\/+$/, '')}"`;
        const current = err.headers['WWW-Authenticate'] ?? 'Bearer';
        err.headers['WWW-Authenticate'] = current === 'Bearer' ? `Bearer ${metadata}` : `${current}, ${metadata}`;
      }
      throw err;
    }
  };
}

/**
 * POST /mcp/projects/:projectId — Streamable HTTP, stateless: each request gets its own transport and server, so any
 * replica answers any request and nothing is lost when one restarts (tasks live in Postgres and Temporal).
 * GET and DELETE (session streams and session ends) are answered 405 by the router: there are no sessions.
 */
export function mcpEndpointRoutes(deps: McpServerDeps & { projects: Pick<ProjectService, 'get'>; publicUrl?: string }) {
  const router = new Router<AppState>({ prefix: MCP_PATH_PREFIX });

  router.post('/:projectId', async (ctx) => {
    const { projectId } = projectParams.parse(ctx.params);
    // Someone who is not a member gets 404, as on every REST route.
    await deps.projects.get(ctx.state.user.id, projectId);
    const caller = { userId: ctx.state.user.id, login: ctx.state.user.login, projectId, requestId: ctx.state.requestId };
    const server = createOrchestratorMcpServer(deps, caller, publicOrigin(ctx, deps.publicUrl));
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    ctx.res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await server.connect(transport);
    // From here the transport writes the answer (JSON or an SSE stream), including JSON-RPC errors.
    ctx.respond = false;
    await transport.handleRequest(ctx.req, ctx.res, ctx.request.body);
  });

  return router;
}

/** RFC 9728 metadata: for the API as a whole, and (path-suffixed) for each project's MCP endpoint. */
export function protectedResourceRoutes(deps: { publicUrl?: string }) {
  const router = new Router();
  const metadata = (ctx: Koa.Context, resourcePath: string) => {
    ctx.set('Cache-Control', 'public, max-age=3600');
    ctx.body = {
      resource: `${publicOrigin(ctx, deps.publicUrl)}${resourcePath}`,
      resource_name: 'orchestrator',
      bearer_methods_supported: ['header'],
    } satisfies z.infer<typeof protectedResourceMetadata>;
  };
  router.get(PROTECTED_RESOURCE, (ctx) => metadata(ctx, ''));
  router.get(`${PROTECTED_RESOURCE}${MCP_PATH_PREFIX}/:projectId`, (ctx) => {
    const { projectId } = projectParams.parse(ctx.params);
    metadata(ctx, `${MCP_PATH_PREFIX}/${encodeURIComponent(projectId)}`);
  });
  return router;
}

export const mcpEndpointOperations: ApiOperation[] = [
  {
    method: 'post',
    path: `${MCP_PATH_PREFIX}/{projectId}`,
    operationId: 'mcpEndpoint',
    summary: 'The orchestrator as an MCP server (Streamable HTTP, stateless) for one project',
    description:
      'JSON-RPC messages of the Model Context Protocol. tools/list shows the tools the project may route to; tools/call runs each as a ' +
      'durable task (as an MCP task when asked: tasks/get, tasks/result, tasks/list, tasks/cancel). Send Accept: application/json, text/event-stream.',
    tags: ['mcp'],
    auth: 'bearer',
    params: z.object({ projectId: z.uuid() }),
    body: z.union([jsonRpcMessage, z.array(jsonRpcMessage)]),
    example: { jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} },
    responses: {
      200: { description: 'the JSON-RPC answer, as JSON or an SSE stream of notifications ending with the answer', contentType: 'text/event-stream' },
      202: { description: 'a notification or response was accepted' },
    },
    problems: [400, 401, 404, 405, 413, 415, 429],
  },
  {
    method: 'get',
    path: PROTECTED_RESOURCE,
    operationId: 'protectedResourceMetadata',
    summary: 'OAuth 2.0 protected resource metadata (RFC 9728) for the API',
    tags: ['mcp'],
    auth: 'none',
    responses: { 200: { description: 'the metadata', schema: protectedResourceMetadata } },
  },
  {
    method: 'get',
    path: `${PROTECTED_RESOURCE}${MCP_PATH_PREFIX}/{projectId}`,
    operationId: 'mcpProtectedResourceMetadata',
    summary: "OAuth 2.0 protected resource metadata (RFC 9728) for a project's MCP endpoint",
    tags: ['mcp'],
    auth: 'none',
    params: z.object({ projectId: z.string() }),
    responses: { 200: { description: 'the metadata', schema: protectedResourceMetadata } },
  },
];

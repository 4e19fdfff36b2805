import Router from '@koa/router';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';
import type { KnowledgeGraph } from '../../core/knowledge-graph.ts';
import type { ProjectService } from '../../core/projects.ts';
import { registerMemoryTools } from '../../integrations/mcp/memory-tools.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';

// The project's knowledge graph as the reference memory server's MCP tools, over Streamable HTTP. Stateless: each
// POST builds a server bound to the caller and the project, so any replica answers any request and nothing is kept
// between requests. Any member may read; the write tools need the member role.

export const knowledgeGraphMcpOperations: ApiOperation[] = [
  {
    method: 'post',
    path: '/v1/projects/{id}/kg/mcp',
    operationId: 'knowledgeGraphMcp',
    summary: 'The project knowledge graph as MCP memory-server tools (Streamable HTTP, stateless)',
    description: 'JSON-RPC 2.0 messages of the Model Context Protocol; send Accept: application/json, text/event-stream.',
    tags: ['knowledge graph'],
    auth: 'bearer',
    params: z.object({ id: z.uuid() }),
    body: z.object({ jsonrpc: z.literal('2.0'), method: z.string(), id: z.union([z.string(), z.number()]).optional(), params: z.record(z.string(), z.unknown()).optional() }),
    example: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search_nodes', arguments: { query: 'alice' } } },
    responses: { 200: { description: 'the JSON-RPC answer' }, 202: { description: 'a notification was accepted' } },
    problems: [401, 404, 429],
  },
];

export function knowledgeGraphMcpRoutes(deps: { kg: KnowledgeGraph; projects: ProjectService }) {
  const router = new Router<AppState>({ prefix: '/v1/projects/:id/kg' });
  const { kg, projects } = deps;

  router.post('/mcp', async (ctx) => {
    const userId = ctx.state.user.id;
    // Membership first: a stranger gets the same 404 as on every other route of the project.
    const project = await projects.get(userId, ctx.params.id!);
    const server = new McpServer({ name: 'orchestrator-memory', version: '1.0.0' });
    registerMemoryTools(
      server,
      async (access) => {
        if (access === 'write') await projects.requireRole(userId, project.id, 'member');
        return kg.forProject(project.id);
      },
      { onUnexpected: (err) => ctx.state.log.error({ err }, 'knowledge graph tool failed') },
    );
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    await server.connect(transport);
    ctx.respond = false;
    ctx.res.on('close', () => {
      void transport.close();
      void server.close();
    });
    await transport.handleRequest(ctx.req, ctx.res, ctx.request.body);
  });

  return router;
}

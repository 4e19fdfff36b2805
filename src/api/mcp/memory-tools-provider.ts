import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';
import type { KnowledgeGraph } from '../../core/knowledge-graph.ts';
import type { ProjectService } from '../../core/projects.ts';
import type { Logger } from '../../lib/logger.ts';
import { type GraphFor, MEMORY_TOOL_NAMES, registerMemoryTools } from '../../integrations/mcp/memory-tools.ts';
import type { ProjectCaller, ProvidedTool, ToolProvider } from './tool-provider.ts';

// The project's knowledge graph as the reference memory server's tools, on the project MCP endpoint. The tools are
// the very ones served at /v1/projects/:id/kg/mcp (registerMemoryTools), reached through an in-process MCP pair, so
// names, argument shapes, validation and answers cannot drift between the two doors.

export const MEMORY_TOOLS: readonly string[] = MEMORY_TOOL_NAMES;

/** A memory server bound to one graph, and a client talking to it in process. */
async function connectMemory(graphFor: GraphFor, onUnexpected: (err: unknown) => void): Promise<Client> {
  const server = new McpServer({ name: 'orchestrator-memory', version: '1.0.0' });
  registerMemoryTools(server, graphFor, { onUnexpected });
  const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
  const client = new Client({ name: 'orchestrator-mcp-endpoint', version: '1.0.0' });
  await server.connect(serverSide);
  await client.connect(clientSide);
  return client;
}

/**
 * Memory tools answer at once (a graph write is one Postgres transaction, nothing to make durable), so they never run
 * as MCP tasks. Any member may read; writes need the member role, as on the REST routes.
 */
export function memoryTools(deps: { kg: Pick<KnowledgeGraph, 'forProject'>; projects: Pick<ProjectService, 'requireRole'>; log: Logger }): ToolProvider {
  // The definitions do not depend on the caller: listed once, from a server whose graph is never reached.
  let definitions: Promise<Tool[]> | undefined;
  const listDefinitions = () =>
    (definitions ??= (async () => {
      const client = await connectMemory(() => Promise.reject(new Error('not for calls')), () => undefined);
      try {
        return (await client.listTools()).tools.map((t) => ({ ...t, execution: { taskSupport: 'forbidden' as const } }));
      } finally {
        await client.close();
      }
    })().catch((err: unknown) => {
      definitions = undefined;
      throw err;
    }));

  async function call(name: string, args: Record<string, unknown>, caller: ProjectCaller): Promise<CallToolResult> {
    const graphFor: GraphFor = async (access) => {
      if (access === 'write') await deps.projects.requireRole(caller.userId, caller.projectId, 'member');
      return deps.kg.forProject(caller.projectId);
    };
    const onUnexpected = (err: unknown) => deps.log.error({ err, projectId: caller.projectId, tool: name }, 'knowledge graph tool failed');
    const client = await connectMemory(graphFor, onUnexpected);
    try {
      return (await client.callTool({ name, arguments: args })) as CallToolResult;
    } finally {
      await client.close();
    }
  }

  return {
    name: 'memory',
    async tools(): Promise<ProvidedTool[]> {
      return (await listDefinitions()).map((definition) => ({
        definition,
        call: async (args, caller) => ({ kind: 'immediate', result: await call(definition.name, args, caller) }),
      }));
    },
  };
}

import type { Tool } from '@modelcontextprotocol/sdk/types.js';
import type { McpServer, McpTool } from '../../core/registry.ts';
import type { TaskService } from '../../core/tasks.ts';
import type { ProvidedTool, ToolProvider } from './tool-provider.ts';

/** Joins a server and tool name where two servers offer the same tool, so every listed name is unique. */
export const QUALIFIER = '__';

/** MCP requires an object schema at the top; a server that declared something else still gets a usable listing. */
function objectSchema(schema: Record<string, unknown>): Tool['inputSchema'] {
  return (schema && schema.type === 'object' ? schema : { type: 'object', ...schema }) as Tool['inputSchema'];
}

/**
 * The tools of every server the project may route to, each call a durable task submitted exactly like
 * POST /v1/tasks. A name two servers share is listed once per server as `server__tool`; the task still asks for the
 * tool by its own name, so routing picks among every server offering it (the same as a REST submission).
 */
export function registryTools(deps: {
  registry: { routableForProject(projectId: string): Promise<Array<McpServer & { tools: McpTool[] }>> };
  tasks: Pick<TaskService, 'submit'>;
  /** Names the endpoint's own tools hold (consent, the memory tools): a server's tool so named is listed as `server__tool`. */
  reservedNames?: readonly string[];
}): ToolProvider {
  const reserved = new Set(deps.reservedNames ?? []);
  return {
    name: 'registry',
    async tools(caller) {
      const servers = await deps.registry.routableForProject(caller.projectId);
      const owners = new Map<string, number>();
      for (const s of servers) for (const t of s.tools) owners.set(t.name, (owners.get(t.name) ?? 0) + 1);
      return servers.flatMap((server) =>
        server.tools.map((tool): ProvidedTool => {
          const name = owners.get(tool.name)! > 1 || reserved.has(tool.name) ? `${server.name}${QUALIFIER}${tool.name}` : tool.name;
          return {
            definition: {
              name,
              title: tool.name,
              description: tool.description ?? `${tool.name} on ${server.name}`,
              inputSchema: objectSchema(tool.inputSchema),
              execution: { taskSupport: 'optional' },
              _meta: { 'orchestrator/server': server.name, 'orchestrator/tool': tool.name, 'orchestrator/heavy': tool.heavy },
            },
            async call(args, c) {
              const { task } = await deps.tasks.submit(c.userId, { projectId: c.projectId, tool: tool.name, arguments: args }, { requestId: c.requestId });
              return { kind: 'task', taskId: task.id };
            },
          };
        }),
      );
    },
  };
}

import type { CallToolResult, Tool } from '@modelcontextprotocol/sdk/types.js';

// The MCP endpoint's tools come from a list of providers, so more tool sets (project memory, agents) can be mounted
// beside the registry's tools without touching the server itself.

/** Who is calling and for which project: every provider answers for exactly this. */
export interface ProjectCaller {
  userId: string;
  login: string;
  projectId: string;
  requestId?: string;
}

/** What a call produced: an answer at once, or a durable task the endpoint follows (or hands back as an MCP task). */
export type ToolRun = { kind: 'immediate'; result: CallToolResult } | { kind: 'task'; taskId: string };

export interface ProvidedTool {
  /** As tools/list shows it; `execution.taskSupport` says whether a client may run it as an MCP task. */
  definition: Tool;
  call(args: Record<string, unknown>, caller: ProjectCaller): Promise<ToolRun>;
}

export interface ToolProvider {
  /** Short and stable: named in logs when a provider's tool is shadowed by an earlier one. */
  name: string;
  tools(caller: ProjectCaller): Promise<ProvidedTool[]>;
}

/** A tool's result as text, marked as an error: for answers a caller should read, not a protocol failure. */
export function errorResult(text: string, structured?: Record<string, unknown>): CallToolResult {
  return { content: [{ type: 'text', text }], isError: true, ...(structured ? { structuredContent: structured } : {}) };
}

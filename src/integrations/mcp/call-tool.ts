import { connectMcp, raceAbort, startDeadline } from './connect.ts';
import type { McpEndpoint } from './connect.ts';
import {
  McpInvalidArgumentsError,
  McpToolError,
  McpToolNotFoundError,
  isToolNotFoundText,
  stripRpcPrefix,
  toMcpClientError,
} from './errors.ts';

export interface ToolProgress {
  progress: number;
  total?: number;
  message?: string;
}

export interface ToolCallResult {
  content: unknown[];
  structuredContent?: unknown;
  isError?: boolean;
}

/**
 * One connection per call: connect, `tools/call`, close. `timeoutMs` bounds the whole thing, connect
 * included; progress notifications keep the SDK's per-request timer alive but never past `timeoutMs`.
 */
export async function callTool(
  endpoint: McpEndpoint,
  name: string,
  args: Record<string, unknown>,
  opts: { timeoutMs: number; signal?: AbortSignal; onProgress?: (p: ToolProgress) => void },
): Promise<ToolCallResult> {
  const deadline = startDeadline(opts.timeoutMs, opts.signal);
  const ctx = { signal: deadline.signal, timeoutMs: opts.timeoutMs, tool: name };
  const onProgress = opts.onProgress;
  let conn;
  try {
    conn = await connectMcp(endpoint, { signal: deadline.signal, timeoutMs: deadline.remainingMs() });
    // One call per connection, so every progress notification on it belongs to this call.
    if (onProgress) {
      conn.onNotification((method, params) => {
        if (!deadline.signal.aborted) forwardProgress(method, params, onProgress);
      });
    }
    const request = conn.client.callTool({ name, arguments: args }, undefined, {
      signal: deadline.signal,
      timeout: deadline.remainingMs(),
      resetTimeoutOnProgress: true,
      maxTotalTimeout: opts.timeoutMs,
      // Asking for progress makes the SDK send a progress token and reset its timer on each update;
      // the updates themselves are taken from the connection, in order (see McpConnection.onNotification).
      ...(onProgress ? { onprogress: () => {} } : {}),
    });
    const result = await raceAbort(Promise.race([request, conn.lost]), deadline.signal);
    const content = Array.isArray(result.content) ? (result.content as unknown[]) : [];
    if (result.isError === true) throw toolFailure(name, textOf(content));
    return {
      content,
      ...(result.structuredContent !== undefined ? { structuredContent: result.structuredContent } : {}),
      ...(typeof result.isError === 'boolean' ? { isError: result.isError } : {}),
    };
  } catch (e) {
    throw toMcpClientError(e, ctx);
  } finally {
    await conn?.close();
    deadline.dispose();
  }
}

/**
 * The SDK's McpServer turns unknown tools and schema violations into `isError` results carrying the
 * JSON-RPC error text ("MCP error -32602: ..."); those are not the tool's own failures.
 */
function toolFailure(tool: string, text: string): Error {
  if (isToolNotFoundText(text, tool)) return new McpToolNotFoundError(tool);
  if (/^MCP error -32602:/.test(text)) return new McpInvalidArgumentsError(stripRpcPrefix(text).slice(0, 1000));
  return new McpToolError(tool, text);
}

function textOf(content: unknown[]): string {
  const parts: string[] = [];
  for (const item of content) {
    if (item && typeof item === 'object' && (item as { type?: unknown }).type === 'text') {
      const text = (item as { text?: unknown }).text;
      if (typeof text === 'string') parts.push(text);
    }
  }
  return parts.length > 0 ? parts.join('\n') : 'tool reported an error without text';
}

function forwardProgress(method: string, params: Record<string, unknown>, onProgress: (p: ToolProgress) => void): void {
  if (method !== 'notifications/progress' || typeof params.progress !== 'number') return;
  try {
    onProgress({
      progress: params.progress,
      ...(typeof params.total === 'number' ? { total: params.total } : {}),
      ...(typeof params.message === 'string' ? { message: params.message } : {}),
    });
  } catch {
    // A failing progress listener must not fail the call it observes.
  }
}

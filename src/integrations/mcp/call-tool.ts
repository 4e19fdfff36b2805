import { raceAbort, startDeadline } from './connect.ts';
import type { McpEndpoint } from './connect.ts';
import {
  McpInvalidArgumentsError,
  McpToolError,
  McpToolNotFoundError,
  isToolNotFoundText,
  stripRpcPrefix,
  toMcpClientError,
} from './errors.ts';
import { neverReachedServer, runOnce, type McpSessionPool } from './session-pool.ts';

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

let nextProgressToken = 0;

/**
 * `tools/call` on a pooled session (`sessions`) or on a connection of its own. `timeoutMs` bounds the whole thing,
 * connect included. `meta` goes into the request's `_meta` (e.g. the task's idempotency key).
 */
export async function callTool(
  endpoint: McpEndpoint,
  name: string,
  args: Record<string, unknown>,
  opts: {
    timeoutMs: number;
    signal?: AbortSignal;
    onProgress?: (p: ToolProgress) => void;
    sessions?: McpSessionPool;
    meta?: Record<string, unknown>;
  },
): Promise<ToolCallResult> {
  const deadline = startDeadline(opts.timeoutMs, opts.signal);
  const ctx = { signal: deadline.signal, timeoutMs: opts.timeoutMs, tool: name };
  const onProgress = opts.onProgress;
  const run = opts.sessions ? opts.sessions.run.bind(opts.sessions) : runOnce;
  try {
    const result = await run(endpoint, { signal: deadline.signal, timeoutMs: deadline.remainingMs() }, async (conn) => {
      // Calls sharing a session are told apart by their progress token, which we choose (not the SDK's request id,
      // which is not known before sending). Updates are taken from the connection synchronously, in arrival order
      // (see McpConnection.onNotification), and the listener goes only after the response has arrived, so every
      // update sent before the result reaches this call.
      const progressToken = onProgress ? `p${++nextProgressToken}` : undefined;
      const unsubscribe = progressToken
        ? conn.onNotification((method, params) => {
            if (!deadline.signal.aborted && params.progressToken === progressToken) forwardProgress(method, params, onProgress!);
          })
        : undefined;
      try {
        const _meta = { ...opts.meta, ...(progressToken ? { progressToken } : {}) };
        const { value: request, sent } = conn.sending(() =>
          conn.client.callTool({ name, arguments: args, ...(Object.keys(_meta).length > 0 ? { _meta } : {}) }, undefined, {
            signal: deadline.signal,
            // The deadline's remainder: progress cannot extend a call past timeoutMs.
            timeout: deadline.remainingMs(),
          }),
          deadline.signal,
        );
        try {
          return await raceAbort(Promise.race([request, conn.lost]), deadline.signal);
        } catch (err) {
          // A lost legacy stream hides whether the request left: the POST's own answer says, and it comes before the
          // tool runs (202), so this wait is one round trip. A Streamable HTTP stream only breaks after it was accepted.
          if (deadline.signal.aborted || conn.isOpen() || conn.transportUsed !== 'sse') throw err;
          const sendError = await raceAbort(sent, deadline.signal).catch(() => undefined);
          throw neverReachedServer(sendError) ? sendError : err;
        }
      } finally {
        unsubscribe?.();
      }
    });
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

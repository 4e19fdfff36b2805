import { SseError } from '@modelcontextprotocol/sdk/client/sse.js';
import { StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpError as SdkMcpError } from '@modelcontextprotocol/sdk/types.js';
import { TargetNotAllowedError } from '../../core/errors.ts';

// Domain errors of the MCP client. `permanent` tells callers (activities) whether retrying can help;
// `code` is stable and safe to persist or show. Messages never contain request headers or tokens.

const TOOL_ERROR_TEXT_LIMIT = 4096;

export abstract class McpClientError extends Error {
  abstract readonly code: string;
  abstract readonly permanent: boolean;
}

export class McpUnreachableError extends McpClientError {
  readonly code = 'McpUnreachable';
  readonly permanent = false;
  override readonly name = 'McpUnreachableError';
}

/** The outbound guard refused the address: retrying will not change that. */
export class McpTargetNotAllowedError extends McpClientError {
  readonly code = 'McpTargetNotAllowed';
  readonly permanent = true;
  override readonly name = 'McpTargetNotAllowedError';
  constructor() {
    super('target not allowed');
  }
}

export class McpHttpError extends McpClientError {
  readonly code = 'McpHttpError';
  readonly permanent: boolean;
  override readonly name = 'McpHttpError';
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    // 408 and 429 say "try again later"; other 4xx will not change by retrying.
    this.permanent = status >= 400 && status < 500 && status !== 408 && status !== 429;
  }
}

export class McpToolNotFoundError extends McpClientError {
  readonly code = 'McpToolNotFound';
  readonly permanent = true;
  override readonly name = 'McpToolNotFoundError';
  constructor(
    readonly tool: string,
    message = `tool "${tool}" not found`,
  ) {
    super(message);
  }
}

export class McpInvalidArgumentsError extends McpClientError {
  readonly code = 'McpInvalidArguments';
  readonly permanent = true;
  override readonly name = 'McpInvalidArgumentsError';
}

export class McpToolError extends McpClientError {
  readonly code = 'McpToolError';
  readonly permanent = true;
  override readonly name = 'McpToolError';
  readonly text: string;
  constructor(
    readonly tool: string,
    text: string,
  ) {
    const truncated = truncate(text, TOOL_ERROR_TEXT_LIMIT);
    super(`tool "${tool}" failed: ${truncated}`);
    this.text = truncated;
  }
}

export class McpTimeoutError extends McpClientError {
  readonly code = 'McpTimeout';
  readonly permanent = false;
  override readonly name = 'McpTimeoutError';
  constructor(
    readonly timeoutMs: number,
    message = `timed out after ${timeoutMs} ms`,
  ) {
    super(message);
  }
}

export class McpAbortedError extends McpClientError {
  readonly code = 'McpAborted';
  // Not retryable by the SDK's own logic: the caller decided to stop.
  readonly permanent = true;
  override readonly name = 'McpAbortedError';
  constructor(message = 'aborted') {
    super(message);
  }
}

/** The server spoke, but not in a way we can use (bad JSON-RPC, unexpected content type, other RPC errors). */
export class McpProtocolError extends McpClientError {
  readonly code = 'McpProtocolError';
  override readonly name = 'McpProtocolError';
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly rpcCode?: number,
  ) {
    super(message);
  }
}

export function isPermanentMcpError(e: unknown): boolean {
  return e instanceof McpClientError && e.permanent;
}

export function truncate(text: string, limit: number): string {
  return text.length <= limit ? text : `${text.slice(0, limit)}… (${text.length - limit} more characters)`;
}

export interface FailureContext {
  /** The signal the failed operation ran under; an abort reason that is already a domain error wins. */
  signal?: AbortSignal;
  timeoutMs: number;
  /** The tool being called, so "Tool X not found" can be told apart from other invalid-params errors. */
  tool?: string;
}

const NETWORK_REASONS: Record<string, string> = {
  ECONNREFUSED: 'connection refused',
  ECONNRESET: 'connection reset',
  EPIPE: 'connection reset',
  ENOTFOUND: 'host not found',
  EAI_AGAIN: 'host not found',
  ETIMEDOUT: 'connection timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  UND_ERR_CONNECT_TIMEOUT: 'connection timed out',
  UND_ERR_SOCKET: 'connection closed',
  UND_ERR_CLOSED: 'connection closed',
};

/** Translates whatever the SDK, fetch or EventSource threw into one of the domain errors above. */
export function toMcpClientError(e: unknown, ctx: FailureContext): McpClientError {
  if (e instanceof McpClientError) return e;
  if (ctx.signal?.aborted) {
    const reason: unknown = ctx.signal.reason;
    return reason instanceof McpClientError ? reason : new McpAbortedError();
  }
  if (!(e instanceof Error)) return new McpProtocolError(String(e), false);
  if (refusedByGuard(e)) return new McpTargetNotAllowedError();

  const rpcCode = jsonRpcCode(e);
  if (rpcCode !== undefined) return fromRpcError(rpcCode, e.message, ctx);

  const status = httpStatus(e);
  if (status !== undefined) return new McpHttpError(status, `HTTP ${status}`);
  if (e instanceof StreamableHTTPError) {
    // Code -1: the server answered 2xx with neither JSON nor an event stream (an HTML page, say).
    return new McpProtocolError('unexpected response content type', true);
  }

  const network = networkReason(e);
  if (network) return new McpUnreachableError(network);
  // The event stream ended or failed without an HTTP status: the server went away.
  if (e instanceof SseError) return new McpUnreachableError('connection lost');
  if (e.name === 'AbortError' || e.name === 'TimeoutError') return new McpTimeoutError(ctx.timeoutMs);
  if (e.name === 'ZodError') return new McpProtocolError('malformed response from server', true);
  return new McpProtocolError(truncate(e.message, 300), false);
}

function fromRpcError(code: number, message: string, ctx: FailureContext): McpClientError {
  switch (code) {
    case -32001:
      return new McpTimeoutError(ctx.timeoutMs);
    case -32000:
      return new McpUnreachableError('connection closed');
    case -32602:
      if (ctx.tool !== undefined && isToolNotFoundText(message, ctx.tool)) {
        return new McpToolNotFoundError(ctx.tool);
      }
      return new McpInvalidArgumentsError(truncate(stripRpcPrefix(message), 1000));
    case -32700:
    case -32600:
    case -32601:
      return new McpProtocolError(truncate(message, 300), true, code);
    default:
      return new McpProtocolError(truncate(message, 300), false, code);
  }
}

/** The SDK's McpServer reports unknown and disabled tools as "Tool <name> not found" / "Tool <name> disabled". */
export function isToolNotFoundText(text: string, tool: string): boolean {
  const name = tool.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return (
    new RegExp(`(^|:\\s*)Tool "?${name}"? (not found|disabled)`, 'i').test(text) ||
    new RegExp(`unknown tool:?\\s*"?${name}"?`, 'i').test(text)
  );
}

export function stripRpcPrefix(text: string): string {
  return text.replace(/^MCP error -?\d+: /, '');
}

function jsonRpcCode(e: Error): number | undefined {
  return e instanceof SdkMcpError ? e.code : undefined;
}

function httpStatus(e: Error): number | undefined {
  if ((e instanceof StreamableHTTPError || e instanceof SseError) && typeof e.code === 'number' && e.code >= 100) {
    return e.code;
  }
  // The legacy SSE transport reports failed POSTs as plain errors: "Error POSTing to endpoint (HTTP 503): ...".
  const m = /\(HTTP (\d{3})\)/.exec(e.message);
  return m ? Number(m[1]) : undefined;
}

const GUARD_MESSAGE = new TargetNotAllowedError().message;

function refusedByGuard(e: Error): boolean {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    if (cur instanceof TargetNotAllowedError) return true;
  }
  // EventSource flattens the cause chain into its message.
  return e.message.includes(GUARD_MESSAGE);
}

function networkReason(e: Error): string | undefined {
  for (let cur: unknown = e, depth = 0; cur instanceof Error && depth < 5; cur = cur.cause, depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_REASONS[code]) return NETWORK_REASONS[code];
  }
  // EventSource flattens the cause chain into its message.
  for (const [code, reason] of Object.entries(NETWORK_REASONS)) {
    if (e.message.includes(code)) return reason;
  }
  if (/fetch failed|socket hang up|other side closed|terminated/i.test(e.message)) return 'connection failed';
  return undefined;
}

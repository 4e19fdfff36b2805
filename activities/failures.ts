import { ApplicationFailure } from '@temporalio/activity';
import { McpClientError, McpHttpError, McpInvalidArgumentsError, McpToolError, McpToolNotFoundError } from '../src/integrations/mcp/errors.ts';

/**
 * Domain errors → Temporal failures. Permanent ones become non-retryable with a stable type (the workflow and
 * retry policy key on it); transient ones are rethrown as plain errors so the retry policy applies.
 */
export function toActivityFailure(err: unknown): Error {
  if (err instanceof McpToolNotFoundError) return ApplicationFailure.nonRetryable(err.message, 'ToolNotFound');
  if (err instanceof McpInvalidArgumentsError) return ApplicationFailure.nonRetryable(`invalid arguments: ${err.message}`, 'InvalidArguments');
  if (err instanceof McpToolError) return ApplicationFailure.nonRetryable(err.message, 'ToolError');
  if (err instanceof McpHttpError && err.permanent) return ApplicationFailure.nonRetryable(`the server refused the call (HTTP ${err.status})`, 'TargetRejected');
  if (err instanceof McpClientError && err.permanent) return ApplicationFailure.nonRetryable(err.message, 'TargetRejected');
  if (err instanceof McpClientError) return ApplicationFailure.retryable(err.message, err.code);
  return err instanceof Error ? err : new Error(String(err));
}

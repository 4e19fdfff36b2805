import type { CallToolResult, Task } from '@modelcontextprotocol/sdk/types.js';
import type { ResultView } from '../../core/results.ts';
import type { TaskStatus } from '../../core/task-model.ts';
import type { TaskView } from '../../core/tasks.ts';
import { CONSENT_TOOL } from './consent-tool.ts';
import { errorResult } from './tool-provider.ts';

/** How often an MCP client should poll tasks/get: our tasks report each transition within milliseconds. */
export const POLL_INTERVAL_MS = 500;

const MCP_STATUS: Record<TaskStatus, Task['status']> = {
  queued: 'working',
  routing: 'working',
  running: 'working',
  awaiting_consent: 'input_required',
  succeeded: 'completed',
  failed: 'failed',
  canceled: 'cancelled',
};

function statusMessage(view: TaskView): string {
  if (view.status === 'awaiting_consent') {
    return (
      `Task ${view.id} (${view.tool}) would run on platform infrastructure instead of the project's own Space. ` +
      `Call the "${CONSENT_TOOL}" tool with {"taskId": "${view.id}", "grant": true} to allow it, or "grant": false to end it.`
    );
  }
  if (view.error && (view.status === 'failed' || view.status === 'canceled')) return `${view.error.code}: ${view.error.message}`;
  return `${view.tool}: ${view.status.replace('_', ' ')}`;
}

/** Our task as an MCP task: the same id, so any API replica (or one started later) answers for it. */
export function toMcpTask(view: TaskView): Task {
  return {
    taskId: view.id,
    status: MCP_STATUS[view.status],
    statusMessage: statusMessage(view),
    // Results are kept as long as the task row: no expiry to announce.
    ttl: null,
    createdAt: view.createdAt,
    lastUpdatedAt: view.updatedAt,
    pollInterval: POLL_INTERVAL_MS,
  };
}

export function isFinished(view: TaskView): boolean {
  return view.status === 'succeeded' || view.status === 'failed' || view.status === 'canceled';
}

/**
 * A finished task as a tools/call result. An inline result is the tool's own content; one kept in the blob store
 * (over the inline limit) comes back as a resource_link to GET /v1/tasks/:id/result, which streams it.
 */
export function toolResultOf(view: TaskView, stored: ResultView | undefined, publicUrl: string): CallToolResult {
  const related = { 'io.modelcontextprotocol/related-task': { taskId: view.id } };
  if (view.status !== 'succeeded') return { ...errorResult(statusMessage(view), { taskId: view.id, status: view.status, ...(view.error ? { error: view.error } : {}) }), _meta: related };
  if (!stored) return { ...errorResult(`Task ${view.id} succeeded but its result is missing.`), _meta: related };
  if (stored.storage === 'pointer') {
    const { size, sha256, mediaType } = stored.pointer;
    return {
      content: [
        {
          type: 'resource_link',
          uri: `${publicUrl}/v1/tasks/${view.id}/result`,
          name: `result of ${view.tool}`,
          description: `${size} bytes, sha256 ${sha256}; fetch with the same bearer token`,
          mimeType: mediaType,
          size,
        },
      ],
      structuredContent: { taskId: view.id, result: stored.pointer },
      _meta: related,
    };
  }
  const value = stored.value as { content?: CallToolResult['content']; structuredContent?: Record<string, unknown> } | undefined;
  return {
    content: Array.isArray(value?.content) ? value.content : [{ type: 'text', text: JSON.stringify(stored.value) }],
    ...(value?.structuredContent ? { structuredContent: value.structuredContent } : {}),
    _meta: related,
  };
}

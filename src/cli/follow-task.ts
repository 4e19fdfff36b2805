import { setTimeout as sleep } from 'node:timers/promises';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import type { ApiClient } from './api-client.ts';
import { CliError } from './exit-codes.ts';

// Follows a task's event stream (GET /v1/tasks/:id/events) until it ends or stops to wait for a person. A dropped
// connection is picked up again from the last event seen (Last-Event-ID), so no event is shown twice or missed.

export const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

export interface TaskEvent {
  /** 0 for the snapshot, which has no sequence number. */
  seq: number;
  type: string;
  data: Record<string, any>;
}

export interface FollowOptions {
  onEvent: (event: TaskEvent) => void;
  /** Called before a reconnection after the stream dropped. */
  onReconnect?: (attempt: number, reason: string) => void;
  signal?: AbortSignal;
  /** Attempts in a row that may fail before giving up; a stream that delivered an event resets the count. */
  maxReconnects?: number;
  backoffMs?: (attempt: number) => number;
}

const defaultBackoff = (attempt: number) => Math.min(250 * 2 ** attempt, 5000);

/** Returns the status the task stopped in. */
export async function followTask(client: ApiClient, taskId: string, opts: FollowOptions): Promise<string> {
  let lastSeq = 0;
  let failures = 0;
  let status = '';
  const maxReconnects = opts.maxReconnects ?? 10;
  for (;;) {
    let progressed = false;
    let reason = 'the stream ended before the task did';
    try {
      const res = await client.raw('GET', `/v1/tasks/${encodeURIComponent(taskId)}/events`, {
        headers: { Accept: 'text/event-stream', ...(lastSeq > 0 ? { 'Last-Event-ID': String(lastSeq) } : {}) },
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      const pending: EventSourceMessage[] = [];
      const parser = createParser({ onEvent: (m) => pending.push(m) });
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        for (const message of pending.splice(0)) {
          const event = toTaskEvent(message);
          if (event.seq > 0) {
            if (event.seq <= lastSeq) continue;
            lastSeq = event.seq;
          }
          progressed = true;
          if ((event.type === 'snapshot' || event.type === 'status') && typeof event.data.status === 'string') status = event.data.status;
          opts.onEvent(event);
          if (event.type === 'status' && TERMINAL.has(status)) return status;
          // The log is replayed from the start: an awaiting_consent there may be history (consent since given). Stop
          // only if the task waits now.
          if (event.type === 'status' && status === 'awaiting_consent') {
            const now = await client.json<{ status: string }>('GET', `/v1/tasks/${encodeURIComponent(taskId)}`);
            if (now.status === 'awaiting_consent') return now.status;
          }
        }
      }
      if (TERMINAL.has(status)) return status;
    } catch (err) {
      if (opts.signal?.aborted) throw err;
      // The API refused (404, 401, …): reconnecting would not change its answer.
      if (err instanceof CliError && (err as { status?: number }).status !== undefined) throw err;
      reason = (err as Error).message;
    }
    failures = progressed ? 1 : failures + 1;
    if (failures > maxReconnects) throw new CliError(`lost the event stream of task ${taskId}: ${reason}`);
    opts.onReconnect?.(failures, reason);
    await sleep((opts.backoffMs ?? defaultBackoff)(failures), undefined, opts.signal ? { signal: opts.signal } : undefined);
  }
}

function toTaskEvent(message: EventSourceMessage): TaskEvent {
  let data: Record<string, any> = {};
  try {
    data = JSON.parse(message.data) as Record<string, any>;
  } catch {
    data = { raw: message.data };
  }
  return { seq: message.id ? Number(message.id) || 0 : 0, type: message.event ?? 'message', data };
}

// What a chaos run submits: a fixed mix of task kinds, each task with arguments no other task has (so the MCP servers'
// logs can be read per task), submitted at a steady rate with Idempotency-Keys and retried until accepted.

import { setTimeout as sleep } from 'node:timers/promises';
import { largeText } from '../../test/support/mcp-test-server.ts';
import { callKey } from './mcp-tap.ts';

export type TaskKind = 'light' | 'heavy' | 'large' | 'consent';

/** One cycle of the mix: half light, then heavy on the Space, large results, and consent (Space down → oracle). */
const MIX: TaskKind[] = [
  'light', 'heavy', 'light', 'large', 'light', 'consent', 'light', 'heavy', 'light', 'large',
  'light', 'consent', 'light', 'heavy', 'light', 'large', 'light', 'consent', 'light', 'heavy',
];

export interface TaskSpec {
  index: number;
  kind: TaskKind;
  idempotencyKey: string;
  project: 'main' | 'fallback';
  body: { tool: string; arguments: Record<string, unknown>; heavy?: boolean };
  /** Where the one tools/call should arrive. */
  runsOn: 'oracle' | 'space';
  callKey: string;
  /** Why a stored result is not this task's output; undefined when it is. */
  checkResult(result: unknown): string | undefined;
}

export interface TaskRecord extends TaskSpec {
  /** Submitted once, never retried, while Temporal is down: the API may store it and still answer an error. */
  oneShot: boolean;
  id?: string;
  acceptedAtMs?: number;
  submitAttempts: number;
  replayed: boolean;
  /** Answers other than 202 and network errors, while retrying. */
  submitErrors: string[];
  consentGrantedAtMs?: number;
  consentAttempts: number;
  /** Each consent answer: status (and code) or the network error, and how long it took. */
  consentAnswers: string[];
}

function textOf(result: unknown): string | undefined {
  const content = (result as { content?: Array<{ type?: string; text?: unknown }> } | undefined)?.content;
  const text = content?.[0]?.text;
  return typeof text === 'string' ? text : undefined;
}

export function buildWorkload(n: number, runTag: string, inlineMaxBytes: number): TaskSpec[] {
  return Array.from({ length: n }, (_, i) => {
    const kind = MIX[i % MIX.length]!;
    const base = { index: i, kind, idempotencyKey: `chaos-${runTag}-${i}` };
    // Unique per task: slow's duration and large's size carry the task's index.
    const slowMs = 150 + i;
    switch (kind) {
      case 'light': {
        if (i % 4 === 2) {
          const args = { ms: slowMs, steps: 2 };
          return { ...base, project: 'main', body: { tool: 'slow', arguments: args }, runsOn: 'oracle', callKey: callKey('slow', args), checkResult: doneAfter };
        }
        const text = `chaos ${runTag} task ${i}`;
        const args = { text };
        return {
          ...base,
          project: 'main',
          body: { tool: 'echo', arguments: args },
          runsOn: 'oracle',
          callKey: callKey('echo', args),
          checkResult: (r) => (textOf(r) === text ? undefined : `echo returned ${JSON.stringify(textOf(r))?.slice(0, 80)}`),
        };
      }
      case 'heavy': {
        const args = { ms: slowMs, steps: 3 };
        return { ...base, project: 'main', body: { tool: 'slow', arguments: args, heavy: true }, runsOn: 'space', callKey: callKey('slow', args), checkResult: doneAfter };
      }
      case 'consent': {
        const args = { ms: slowMs, steps: 2 };
        return { ...base, project: 'fallback', body: { tool: 'slow', arguments: args, heavy: true }, runsOn: 'oracle', callKey: callKey('slow', args), checkResult: doneAfter };
      }
      case 'large': {
        const bytes = inlineMaxBytes + 4096 + i;
        const args = { bytes };
        return {
          ...base,
          project: 'main',
          body: { tool: 'large', arguments: args },
          runsOn: 'oracle',
          callKey: callKey('large', args),
          checkResult: (r) => {
            const text = textOf(r);
            if (text === undefined) return 'no text content';
            if (text.length !== bytes) return `${text.length} characters, expected ${bytes}`;
            return text === largeText(bytes) ? undefined : 'content differs from what the tool returned';
          },
        };
      }
    }
  });
}

function doneAfter(r: unknown): string | undefined {
  const text = textOf(r);
  return text !== undefined && /^done after \d+ ms$/.test(text) ? undefined : `slow returned ${JSON.stringify(text)?.slice(0, 80)}`;
}

export interface ApiAnswer {
  status: number;
  headers: Headers;
  body: any;
  text: string;
}

/** The API over HTTP on 127.0.0.1, as any client sees it; network errors throw. */
export function apiClient(baseUrl: string, token: string) {
  return async function api(method: string, p: string, opts: { body?: unknown; headers?: Record<string, string>; timeoutMs?: number } = {}): Promise<ApiAnswer> {
    const headers: Record<string, string> = { Authorization: `Bearer ${token}`, ...opts.headers };
    if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
    const res = await fetch(`${baseUrl}${p}`, {
      method,
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 20_000),
    });
    const text = await res.text();
    let body: unknown = text;
    if ((res.headers.get('content-type') ?? '').includes('json') && text) {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    return { status: res.status, headers: res.headers, body, text };
  };
}

export type Api = ReturnType<typeof apiClient>;

/** Whether another try may succeed: the API or something behind it was away. */
function transient(status: number): boolean {
  return status >= 500 || status === 429 || status === 408;
}

/**
 * Submits until accepted (202), with the same Idempotency-Key on every try, so a try whose answer was lost with a
 * crashed API never makes a second task. Gives up after `deadlineMs`; a one-shot task is tried once.
 */
export async function submitTask(api: Api, task: TaskRecord, projectId: string, clock: () => number, deadlineMs: number): Promise<void> {
  if (task.oneShot) deadlineMs = 0;
  const giveUpAt = Date.now() + deadlineMs;
  let backoff = 250;
  for (;;) {
    task.submitAttempts++;
    try {
      const r = await api('POST', '/v1/tasks', { body: { projectId, ...task.body }, headers: { 'Idempotency-Key': task.idempotencyKey } });
      if (r.status === 202) {
        if (task.id !== undefined && task.id !== r.body.id) task.submitErrors.push(`a retry answered another task id (${r.body.id}, first ${task.id})`);
        task.id = r.body.id;
        task.acceptedAtMs = clock();
        if (r.headers.get('Idempotent-Replayed') === 'true') task.replayed = true;
        return;
      }
      task.submitErrors.push(`${r.status} ${(r.body as { code?: string })?.code ?? ''}`.trim());
      if (!transient(r.status)) return;
    } catch (err) {
      task.submitErrors.push(`network: ${(err as Error).name}`);
    }
    if (Date.now() > giveUpAt) return;
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 4000);
  }
}

/**
 * Grants consent to the fallback tasks as they start waiting for it, the way a person answering the prompt would.
 * Answers run side by side: one that waits on a worker being restarted must not hold back the others' deadlines.
 * A task still listed as waiting after an answer failed (network, 5xx, 409 from a race) is answered again.
 */
export async function answerConsents(api: Api, tasks: TaskRecord[], projectId: string, clock: () => number, stop: AbortSignal): Promise<void> {
  const byId = new Map<string, TaskRecord>();
  const answering = new Set<string>();
  const pending = new Set<Promise<void>>();
  const answer = async (t: TaskRecord) => {
    t.consentAttempts++;
    const asked = clock();
    try {
      const c = await api('POST', `/v1/tasks/${t.id}/consent`, { body: { grant: true }, timeoutMs: 60_000 });
      t.consentAnswers.push(`${c.status}${(c.body as { code?: string })?.code ? ` ${(c.body as { code: string }).code}` : ''} after ${clock() - asked} ms`);
      if (c.status === 200) t.consentGrantedAtMs = clock();
    } catch (err) {
      t.consentAnswers.push(`${(err as Error).name} after ${clock() - asked} ms`);
    }
  };
  while (!stop.aborted) {
    for (const t of tasks) if (t.kind === 'consent' && t.id) byId.set(t.id, t);
    try {
      const r = await api('GET', `/v1/tasks?projectId=${projectId}&status=awaiting_consent&limit=200`);
      if (r.status === 200) {
        for (const item of r.body.items as Array<{ id: string }>) {
          // A task the client never heard back about (its submission was cut off, but the row was stored and the
          // reconciler started it) waits for consent too: a person would see it in the list and answer it.
          let t = byId.get(item.id);
          if (!t) {
            t = { id: item.id, kind: 'consent', consentAttempts: 0, consentAnswers: [] } as unknown as TaskRecord;
            byId.set(item.id, t);
          }
          if (t.consentGrantedAtMs !== undefined || answering.has(item.id)) continue;
          answering.add(item.id);
          const p: Promise<void> = answer(t).finally(() => {
            answering.delete(item.id);
            pending.delete(p);
          });
          pending.add(p);
        }
      }
    } catch {
      // The API is away: the next round asks again.
    }
    await sleep(500, undefined, { signal: stop }).catch(() => undefined);
  }
  await Promise.all(pending);
}

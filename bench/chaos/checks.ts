// What must hold after a chaos run, read from the database, the API (as a client reads it) and the MCP servers' logs.

import { isDeepStrictEqual } from 'node:util';
import { sql } from 'kysely';
import type { Db } from '../../src/db/create-db.ts';
import { readEvents } from '../../test/support/sse-client.ts';
import type { Api, TaskRecord } from './workload.ts';

const TERMINAL = new Set(['succeeded', 'failed', 'canceled']);

export interface CheckResult {
  name: string;
  held: boolean;
  /** Counts behind the verdict, in words. */
  detail: string;
  /** Up to a few task-level examples of what went wrong. */
  examples: string[];
  /** Reported, never failing the run (documented at-least-once behaviour). */
  informational?: boolean;
}

export interface LostTask {
  index: number;
  kind: string;
  id?: string;
  /** The API answered 202; otherwise the client was refused but the task was stored anyway. */
  acknowledged: boolean;
  why: string;
  /** The task's status events in order, and what the consent answers got: to see where it went wrong. */
  trail?: string;
}

export interface Verdict {
  checks: CheckResult[];
  lost: LostTask[];
  statusCounts: Record<string, number>;
  duplicateExecutions: number;
}

interface TaskRow {
  id: string;
  idempotency_key: string | null;
  status: string;
  target: Record<string, unknown> | null;
  error: Record<string, unknown> | null;
  event_seq: number;
}

interface EventRow {
  task_id: string;
  seq: number;
  type: string;
  data: Record<string, unknown>;
}

const EXAMPLES = 5;

class Tally {
  count = 0;
  examples: string[] = [];
  add(example: string): void {
    this.count++;
    if (this.examples.length < EXAMPLES) this.examples.push(example);
  }
}

async function inBatches<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

export async function verify(deps: {
  db: Db;
  api: Api;
  apiUrl: string;
  token: string;
  tasks: TaskRecord[];
  keyPrefix: string;
  /** tools/call requests per call key, per MCP server. */
  calls: { oracle: Map<string, number>; space: Map<string, number>; fallbackSpace: Map<string, number> };
}): Promise<Verdict> {
  const { db, tasks } = deps;
  const checks: CheckResult[] = [];
  const lost = new Map<number, LostTask>();
  const loseTask = (t: TaskRecord, why: string) => {
    if (!lost.has(t.index)) lost.set(t.index, { index: t.index, kind: t.kind, id: t.id, acknowledged: t.acceptedAtMs !== undefined, why });
  };

  // --- accepted, once ---------------------------------------------------------------------------------------------
  const rows = (await db
    .selectFrom('tasks')
    .select(['id', 'idempotency_key', 'status', 'target', 'error', 'event_seq'])
    .where('idempotency_key', 'like', `${deps.keyPrefix}%`)
    .execute()) as TaskRow[];
  const rowsByKey = new Map<string, TaskRow[]>();
  for (const r of rows) rowsByKey.set(r.idempotency_key!, [...(rowsByKey.get(r.idempotency_key!) ?? []), r]);
  const allRows = Number((await db.selectFrom('tasks').select(sql<number>`count(*)`.as('n')).executeTakeFirstOrThrow()).n);

  const unaccepted = new Tally();
  let storedAnyway = 0;
  for (const t of tasks) {
    if (t.id !== undefined) continue;
    if (!t.oneShot) unaccepted.add(`#${t.index} ${t.kind}: ${t.submitErrors.slice(-3).join(', ') || 'never answered'}`);
    // Refused, yet stored: the client heard an error, but the task exists, so it must still run to an end.
    if (rowsByKey.has(t.idempotencyKey)) {
      t.id = rowsByKey.get(t.idempotencyKey)![0]!.id;
      storedAnyway++;
    }
  }
  const regular = tasks.filter((t) => !t.oneShot);
  const oneShots = tasks.filter((t) => t.oneShot);
  const replays = tasks.filter((t) => t.replayed).length;
  const retried = tasks.filter((t) => t.submitAttempts > 1).length;
  checks.push({
    name: 'every submission accepted (202)',
    held: unaccepted.count === 0,
    detail:
      `${regular.length - unaccepted.count}/${regular.length} accepted; ${retried} needed a retry, ${replays} answered as an idempotent replay` +
      (oneShots.length > 0
        ? `; one-shot during the Temporal outage: ${oneShots.filter((t) => t.acceptedAtMs !== undefined).length}/${oneShots.length} accepted, ${storedAnyway} refused but stored`
        : ''),
    examples: unaccepted.examples,
  });

  const duplicated = new Tally();
  for (const [key, list] of rowsByKey) if (list.length > 1) duplicated.add(`${key}: ${list.length} rows`);
  const mismatched = new Tally();
  for (const t of tasks) {
    const list = rowsByKey.get(t.idempotencyKey);
    if (t.id && list && list[0]!.id !== t.id) mismatched.add(`#${t.index}: API said ${t.id}, stored ${list[0]!.id}`);
    for (const e of t.submitErrors) if (e.startsWith('a retry answered')) mismatched.add(`#${t.index}: ${e}`);
  }
  const strangers = allRows - rows.length;
  checks.push({
    name: 'one task per Idempotency-Key',
    held: duplicated.count === 0 && mismatched.count === 0 && strangers === 0,
    detail: `${rows.length} rows for ${rowsByKey.size} keys; ${duplicated.count} keys with several rows, ${mismatched.count} id mismatches, ${strangers} rows without a key`,
    examples: [...duplicated.examples, ...mismatched.examples],
  });

  // --- terminal and as expected -------------------------------------------------------------------------------------
  const rowById = new Map(rows.map((r) => [r.id, r]));
  const statusCounts: Record<string, number> = {};
  const notTerminal = new Tally();
  const unexpected = new Tally();
  const wrongTarget = new Tally();
  for (const t of tasks) {
    const row = t.id ? rowById.get(t.id) : undefined;
    if (!row) {
      if (t.id) loseTask(t, 'accepted, but no row');
      continue;
    }
    statusCounts[row.status] = (statusCounts[row.status] ?? 0) + 1;
    const acknowledged = t.acceptedAtMs !== undefined;
    if (!TERMINAL.has(row.status)) {
      const refused = acknowledged ? '' : ` (stored although the client was told ${t.submitErrors.at(-1) ?? 'nothing'})`;
      notTerminal.add(`#${t.index} ${t.kind} ${row.id}: ${row.status}${refused}`);
      loseTask(t, `still ${row.status}${acknowledged ? '' : ', stored but refused'}`);
      continue;
    }
    // A refused submission may end any way (failed to start is an honest end), as long as it ends.
    if (!acknowledged) continue;
    if (row.status !== 'succeeded') {
      const code = (row.error?.code as string | undefined) ?? '?';
      unexpected.add(`#${t.index} ${t.kind} ${row.id}: ${row.status} ${code}: ${String(row.error?.message ?? '').slice(0, 160)}`);
      loseTask(t, `${row.status} (${code})`);
      continue;
    }
    if (row.target?.kind !== t.runsOn) wrongTarget.add(`#${t.index} ${t.kind}: ran on ${String(row.target?.kind)}, expected ${t.runsOn}`);
  }
  const accepted = tasks.filter((t) => t.id).length;
  checks.push({
    name: 'every task terminal',
    held: notTerminal.count === 0,
    detail: `${accepted - notTerminal.count}/${accepted} terminal`,
    examples: notTerminal.examples,
  });
  checks.push({
    name: 'every task succeeded',
    held: unexpected.count === 0 && notTerminal.count === 0,
    detail: `${statusCounts.succeeded ?? 0}/${accepted} succeeded; ${unexpected.count} ended otherwise`,
    examples: unexpected.examples,
  });
  checks.push({
    name: 'ran where expected (heavy: Space, rest: oracle)',
    held: wrongTarget.count === 0,
    detail: `${wrongTarget.count} succeeded tasks ran elsewhere`,
    examples: wrongTarget.examples,
  });

  // --- results ------------------------------------------------------------------------------------------------------
  const succeeded = tasks.filter((t) => t.id && rowById.get(t.id)?.status === 'succeeded');
  const ids = tasks.filter((t) => t.id && rowById.has(t.id)).map((t) => t.id!);
  const resultRows = ids.length === 0 ? [] : await db.selectFrom('results').select(['task_id', 'location']).where('task_id', 'in', ids).execute();
  const staged = ids.length === 0 ? [] : await db.selectFrom('result_staging').select('task_id').where('task_id', 'in', ids).execute();
  const resultCount = new Map<string, number>();
  for (const r of resultRows) resultCount.set(r.task_id, (resultCount.get(r.task_id) ?? 0) + 1);
  const stagedIds = new Set(staged.map((s) => s.task_id));
  const badResult = new Tally();
  await inBatches(succeeded, 8, async (t) => {
    const n = resultCount.get(t.id!) ?? 0;
    if (n !== 1) {
      badResult.add(`#${t.index} ${t.kind}: ${n} result rows`);
      loseTask(t, `succeeded with ${n} results`);
      return;
    }
    if (stagedIds.has(t.id!)) badResult.add(`#${t.index} ${t.kind}: output still staged after success`);
    try {
      const r = await deps.api('GET', `/v1/tasks/${t.id}/result`, { timeoutMs: 30_000 });
      if (r.status !== 200) {
        badResult.add(`#${t.index} ${t.kind}: GET result → ${r.status} ${(r.body as { code?: string })?.code ?? ''}`);
        loseTask(t, `result not readable (${r.status})`);
        return;
      }
      const body = typeof r.body === 'string' ? JSON.parse(r.body) : r.body;
      const wrong = t.checkResult(body);
      if (wrong) {
        badResult.add(`#${t.index} ${t.kind}: ${wrong}`);
        loseTask(t, `wrong result: ${wrong}`);
      }
    } catch (err) {
      badResult.add(`#${t.index} ${t.kind}: GET result failed: ${(err as Error).message}`);
      loseTask(t, 'result not readable');
    }
  });
  const pointers = resultRows.filter((r) => r.location !== null).length;
  checks.push({
    name: 'exactly one result each, readable and correct',
    held: badResult.count === 0,
    detail: `${succeeded.length - badResult.count}/${succeeded.length} succeeded tasks (${pointers} in the file store); ${badResult.count} problems`,
    examples: badResult.examples,
  });

  // --- the event log ------------------------------------------------------------------------------------------------
  const events = ids.length === 0
    ? []
    : ((await db.selectFrom('task_events').select(['task_id', 'seq', 'type', 'data']).where('task_id', 'in', ids).orderBy('task_id').orderBy('seq').execute()) as EventRow[]);
  const eventsOf = new Map<string, EventRow[]>();
  for (const e of events) eventsOf.set(e.task_id, [...(eventsOf.get(e.task_id) ?? []), e]);

  const gaps = new Tally();
  const repeats = new Tally();
  const repeatKinds = new Map<string, number>();
  const shape = new Tally();
  const consentPath = new Tally();
  for (const t of tasks) {
    if (!t.id || !rowById.has(t.id)) continue;
    const log = eventsOf.get(t.id) ?? [];
    const row = rowById.get(t.id)!;
    const seqs = log.map((e) => e.seq);
    if (!seqs.every((s, i) => s === i + 1) || row.event_seq !== seqs.length) {
      gaps.add(`#${t.index} ${t.kind}: seqs ${compact(seqs)}, tasks.event_seq ${row.event_seq}`);
    }
    for (let i = 1; i < log.length; i++) {
      const [a, b] = [log[i - 1]!, log[i]!];
      if (a.type === b.type && isDeepStrictEqual(a.data, b.data)) {
        const kind = `${b.type}${b.type === 'status' ? `:${String(b.data.status)}` : ''}`;
        repeatKinds.set(kind, (repeatKinds.get(kind) ?? 0) + 1);
        repeats.add(`#${t.index} ${t.kind}: seq ${a.seq} and ${b.seq} are both ${kind}`);
      }
    }
    const statuses = log.filter((e) => e.type === 'status').map((e) => String(e.data.status));
    const terminal = statuses.filter((s) => TERMINAL.has(s));
    const resultEvents = log.filter((e) => e.type === 'result').length;
    if (TERMINAL.has(row.status)) {
      const problems: string[] = [];
      if (statuses[0] !== 'queued') problems.push(`first status ${statuses[0]}`);
      if (terminal.length !== 1) problems.push(`${terminal.length} terminal statuses`);
      if (log.at(-1)?.type !== 'status' || !TERMINAL.has(String(log.at(-1)?.data.status))) problems.push('log does not end with the terminal status');
      if (row.status === 'succeeded' && resultEvents !== 1) problems.push(`${resultEvents} result events`);
      if (problems.length > 0) shape.add(`#${t.index} ${t.kind}: ${problems.join(', ')}`);
    }
    const askedConsent = statuses.includes('awaiting_consent');
    if (row.status === 'succeeded' && askedConsent !== (t.kind === 'consent')) consentPath.add(`#${t.index} ${t.kind}: ${askedConsent ? 'asked for consent' : 'never asked for consent'}`);
  }
  checks.push({ name: 'event seq contiguous from 1', held: gaps.count === 0, detail: `${gaps.count} tasks with a gap`, examples: gaps.examples });
  checks.push({
    name: 'no event repeated back to back',
    held: repeats.count === 0,
    detail: repeats.count === 0 ? '0 repeats' : `${repeats.count} repeats (${[...repeatKinds].map(([k, n]) => `${k} ×${n}`).join(', ')})`,
    examples: repeats.examples,
  });
  checks.push({
    name: 'one terminal status, last; one result event',
    held: shape.count === 0,
    detail: `${shape.count} tasks with a malformed log`,
    examples: shape.examples,
  });
  checks.push({
    name: 'consent asked exactly for the fallback tasks',
    held: consentPath.count === 0,
    detail: `${consentPath.count} tasks off their path; ${tasks.filter((t) => t.consentGrantedAtMs !== undefined).length} consents granted`,
    examples: consentPath.examples,
  });

  // --- SSE, as a client replays it ------------------------------------------------------------------------------------
  const sseMismatch = new Tally();
  const finished = tasks.filter((t) => t.id && TERMINAL.has(rowById.get(t.id)?.status ?? ''));
  await inBatches(finished, 8, async (t) => {
    const expected = (eventsOf.get(t.id!) ?? []).map((e) => e.seq);
    try {
      const { status, events: got, closedByServer } = await readEvents(`${deps.apiUrl}/v1/tasks/${t.id}/events`, { token: deps.token, timeoutMs: 15_000 });
      const seqs = got.filter((e) => e.id !== undefined).map((e) => Number(e.id));
      if (status !== 200 || !closedByServer || !isDeepStrictEqual(seqs, expected)) {
        sseMismatch.add(`#${t.index} ${t.kind}: HTTP ${status}, ids ${compact(seqs)} vs log ${compact(expected)}${closedByServer ? '' : ', stream left open'}`);
      }
    } catch (err) {
      sseMismatch.add(`#${t.index} ${t.kind}: ${(err as Error).message}`);
    }
  });
  checks.push({
    name: 'SSE replay = the log, ids 1..n, then closes',
    held: sseMismatch.count === 0,
    detail: `${finished.length - sseMismatch.count}/${finished.length} streams match`,
    examples: sseMismatch.examples,
  });

  // --- executions on the MCP servers ----------------------------------------------------------------------------------
  const missing = new Tally();
  const duplicates = new Tally();
  const elsewhere = new Tally();
  let duplicateExecutions = 0;
  for (const t of succeeded) {
    const here = t.runsOn === 'space' ? deps.calls.space : deps.calls.oracle;
    const other = t.runsOn === 'space' ? deps.calls.oracle : deps.calls.space;
    const n = here.get(t.callKey) ?? 0;
    if (n === 0) missing.add(`#${t.index} ${t.kind}: succeeded, but the ${t.runsOn} never ran ${t.callKey.slice(0, 60)}`);
    if (n > 1) {
      duplicateExecutions += n - 1;
      duplicates.add(`#${t.index} ${t.kind}: ran ${n}× on the ${t.runsOn}`);
    }
    const o = (other.get(t.callKey) ?? 0) + (deps.calls.fallbackSpace.get(t.callKey) ?? 0);
    if (o > 0) elsewhere.add(`#${t.index} ${t.kind}: also ran ${o}× on another server`);
  }
  checks.push({
    name: 'each succeeded task executed by its server',
    held: missing.count === 0,
    detail: `${missing.count} without an execution`,
    examples: missing.examples,
  });
  checks.push({
    name: 'executions per task (at-least-once: retries may repeat)',
    held: true,
    informational: true,
    detail: `${duplicates.count} tasks ran more than once, ${duplicateExecutions} extra executions; ${elsewhere.count} also ran on another server`,
    examples: [...duplicates.examples, ...elsewhere.examples].slice(0, EXAMPLES),
  });

  for (const l of lost.values()) {
    const t = tasks[l.index]!;
    const statuses = (l.id ? eventsOf.get(l.id) ?? [] : []).filter((e) => e.type === 'status').map((e) => String(e.data.status));
    l.trail = `statuses ${statuses.join('>') || 'none'}${t.kind === 'consent' ? `; consent answers: ${t.consentAnswers.join(', ') || 'none'}` : ''}`;
  }
  return { checks, lost: [...lost.values()].sort((a, b) => a.index - b.index), statusCounts, duplicateExecutions };
}

/** 1..n as "1-n", otherwise the list (shortened). */
function compact(seqs: number[]): string {
  if (seqs.length === 0) return '[]';
  if (seqs.every((s, i) => s === i + 1)) return `1-${seqs.length}`;
  const text = seqs.join(',');
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

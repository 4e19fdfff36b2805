import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import type { TasksTable } from '../db/schema.ts';
import type { Insertable, Selectable } from 'kysely';

export type TaskRow = Omit<Selectable<TasksTable>, 'arguments'>;

const viewColumns = [
  't.id', 't.project_id', 't.created_by', 't.tool', 't.heavy', 't.consent_to_oracle', 't.idempotency_key', 't.request_hash',
  't.workflow_id', 't.status', 't.target', 't.attempts', 't.error', 't.event_seq', 't.created_at', 't.updated_at', 't.finished_at',
  't.workflow_started_at', 't.retry_of',
] as const;

/** What a rerun copies from the task it reruns. */
export type RetrySource = TaskRow & { arguments: Record<string, unknown> };

/** Inserts the task unless one with this id exists; true when this call created it. */
export async function insertTask(db: Db, values: Insertable<TasksTable>): Promise<boolean> {
  const r = await db.insertInto('tasks').values(values).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

/** Inserts a rerun unless the task it reruns already has one; true when this call created it. */
export async function insertRerun(db: Db, values: Insertable<TasksTable> & { retry_of: string }): Promise<boolean> {
  // No conflict target: the unique index on retry_of (partial) is the conflict that matters here.
  const r = await db.insertInto('tasks').values(values).onConflict((oc) => oc.doNothing()).executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
}

/** The id of the task that reruns this one, if any. */
export async function findRerunId(db: Db, taskId: string): Promise<string | undefined> {
  return (await db.selectFrom('tasks').select('id').where('retry_of', '=', taskId).executeTakeFirst())?.id;
}

/** A task visible to the user: it belongs to a project they are a member of. */
export async function findVisibleTask(db: Db, userId: string, taskId: string): Promise<TaskRow | undefined> {
  return db
    .selectFrom('tasks as t')
    .innerJoin('project_members as m', (j) => j.onRef('m.project_id', '=', 't.project_id').on('m.user_id', '=', userId))
    .select(viewColumns)
    .where('t.id', '=', taskId)
    .executeTakeFirst();
}

export async function findTask(db: Db, taskId: string): Promise<TaskRow | undefined> {
  return db.selectFrom('tasks as t').select(viewColumns).where('t.id', '=', taskId).executeTakeFirst();
}

/** What a workflow transition checks before writing: the task's status and attempts, and its last logged event. */
export async function findTransitionBase(
  db: Db,
  taskId: string,
): Promise<{ status: string; attempts: unknown[]; lastType: string | null; lastData: Record<string, unknown> | null } | undefined> {
  return db
    .selectFrom('tasks as t')
    .leftJoin('task_events as e', (j) => j.onRef('e.task_id', '=', 't.id').onRef('e.seq', '=', 't.event_seq'))
    .select(['t.status', 't.attempts', 'e.type as lastType', 'e.data as lastData'])
    .where('t.id', '=', taskId)
    .executeTakeFirst();
}

export async function loadArguments(db: Db, taskId: string): Promise<Record<string, unknown> | undefined> {
  const row = await db.selectFrom('tasks').select('arguments').where('id', '=', taskId).executeTakeFirst();
  return row?.arguments;
}

/** Who submitted the task (through an API key: the key's user), for calls made as that user. */
export async function loadSubmitter(db: Db, taskId: string): Promise<string | undefined> {
  const row = await db.selectFrom('tasks').select('created_by').where('id', '=', taskId).executeTakeFirst();
  return row?.created_by;
}

export async function listVisibleTasks(
  db: Db,
  userId: string,
  q: { projectId?: string; status?: string; limit: number; before?: { createdAt: Date; id: string } },
): Promise<TaskRow[]> {
  let query = db
    .selectFrom('tasks as t')
    .innerJoin('project_members as m', (j) => j.onRef('m.project_id', '=', 't.project_id').on('m.user_id', '=', userId))
    .select(viewColumns);
  if (q.projectId) query = query.where('t.project_id', '=', q.projectId);
  if (q.status) query = query.where('t.status', '=', q.status);
  if (q.before) {
    const { createdAt, id } = q.before;
    query = query.where(sql<boolean>`(t.created_at, t.id) < (${createdAt}, ${id})`);
  }
  return query.orderBy('t.created_at', 'desc').orderBy('t.id', 'desc').limit(q.limit).execute();
}

export async function updateTaskState(
  db: Db,
  taskId: string,
  values: { status: string; target: Record<string, unknown> | null; attempts: unknown[]; error: Record<string, unknown> | null; finished: boolean },
): Promise<void> {
  await db
    .updateTable('tasks')
    .set({
      status: values.status,
      target: values.target === null ? null : JSON.stringify(values.target),
      attempts: JSON.stringify(values.attempts),
      error: values.error === null ? null : JSON.stringify(values.error),
      updated_at: new Date(),
      ...(values.finished ? { finished_at: new Date() } : {}),
    })
    .where('id', '=', taskId)
    .execute();
}

/** Tasks of the project not yet finished. The predicate is the one of the partial index tasks_project_active_idx. */
export async function countActiveTasks(db: Db, projectId: string): Promise<number> {
  const row = await db
    .selectFrom('tasks')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('project_id', '=', projectId)
    .where(sql<boolean>`status not in ('succeeded', 'failed', 'canceled')`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Unfinished tasks of every project, by status: what the tasks_active gauge reports. */
export async function countActiveTasksByStatus(db: Db): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('tasks')
    .select(['status', (eb) => eb.fn.countAll<string>().as('n')])
    .where(sql<boolean>`status not in ('succeeded', 'failed', 'canceled')`)
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

/** Records that the task's workflow exists; the reconciler then leaves the task alone. */
export async function markWorkflowStarted(db: Db, taskId: string): Promise<void> {
  await db.updateTable('tasks').set({ workflow_started_at: sql`now()` }).where('id', '=', taskId).where('workflow_started_at', 'is', null).execute();
}

/**
 * Queued tasks whose workflow was never started, accepted longer than `olderThanMs` ago (by the database's clock, so
 * replicas agree), oldest first. The predicate is the one of the partial index tasks_unstarted_idx.
 */
export async function findUnstartedTaskIds(db: Db, q: { olderThanMs: number; limit: number }): Promise<string[]> {
  const rows = await db
    .selectFrom('tasks')
    .select('id')
    .where('workflow_started_at', 'is', null)
    .where('status', '=', 'queued')
    .where(sql<boolean>`created_at < now() - ${q.olderThanMs} * interval '1 millisecond'`)
    .orderBy('created_at')
    .limit(q.limit)
    .execute();
  return rows.map((r) => r.id);
}

/**
 * Locks the task until the transaction ends if it is still queued without a workflow. `skipLocked`: another
 * replica holding it is left to finish (the reconciler); without it the caller waits for that replica (cancel).
 */
export async function lockUnstartedTask(trx: Db, taskId: string, opts: { skipLocked: boolean }): Promise<TaskRow | undefined> {
  let q = trx
    .selectFrom('tasks as t')
    .select(viewColumns)
    .where('t.id', '=', taskId)
    .where('t.workflow_started_at', 'is', null)
    .where('t.status', '=', 'queued')
    .forUpdate();
  if (opts.skipLocked) q = q.skipLocked();
  return q.executeTakeFirst();
}

/** The task with its arguments, if the user may see it. */
export async function findVisibleRetrySource(db: Db, userId: string, taskId: string): Promise<RetrySource | undefined> {
  return db
    .selectFrom('tasks as t')
    .innerJoin('project_members as m', (j) => j.onRef('m.project_id', '=', 't.project_id').on('m.user_id', '=', userId))
    .select([...viewColumns, 't.arguments'])
    .where('t.id', '=', taskId)
    .executeTakeFirst();
}

/**
 * Failed or canceled tasks of a project that no task reruns yet, oldest first: calling again with the same filter
 * picks up where the last call stopped.
 */
export async function listRetryCandidates(
  db: Db,
  q: { projectId: string; statuses: string[]; tool?: string; since?: Date; limit: number },
): Promise<RetrySource[]> {
  let query = db
    .selectFrom('tasks as t')
    .select([...viewColumns, 't.arguments'])
    .where('t.project_id', '=', q.projectId)
    .where('t.status', 'in', q.statuses)
    .where((eb) => eb.not(eb.exists(eb.selectFrom('tasks as r').select('r.id').whereRef('r.retry_of', '=', 't.id'))));
  if (q.tool !== undefined) query = query.where('t.tool', '=', q.tool);
  if (q.since !== undefined) query = query.where('t.created_at', '>=', q.since);
  return query.orderBy('t.created_at').orderBy('t.id').limit(q.limit).execute();
}

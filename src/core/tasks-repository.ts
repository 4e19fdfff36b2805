import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import type { TasksTable } from '../db/schema.ts';
import type { Insertable, Selectable } from 'kysely';

export type TaskRow = Omit<Selectable<TasksTable>, 'arguments'>;

const viewColumns = [
  't.id', 't.project_id', 't.created_by', 't.tool', 't.heavy', 't.consent_to_oracle', 't.idempotency_key', 't.request_hash',
  't.workflow_id', 't.status', 't.target', 't.attempts', 't.error', 't.event_seq', 't.created_at', 't.updated_at', 't.finished_at',
] as const;

/** Inserts the task unless one with this id exists; true when this call created it. */
export async function insertTask(db: Db, values: Insertable<TasksTable>): Promise<boolean> {
  const r = await db.insertInto('tasks').values(values).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
  return (r.numInsertedOrUpdatedRows ?? 0n) > 0n;
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

export async function loadArguments(db: Db, taskId: string): Promise<Record<string, unknown> | undefined> {
  const row = await db.selectFrom('tasks').select('arguments').where('id', '=', taskId).executeTakeFirst();
  return row?.arguments;
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

import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// A task records when its workflow was started, so a task accepted but never started (the API died, or Temporal was
// away) is found and started by the reconciler; a rerun of a failed or canceled task points at the task it reruns.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('tasks').addColumn('workflow_started_at', 'timestamptz').execute();
  await db.schema.alterTable('tasks').addColumn('retry_of', 'uuid', (c) => c.references('tasks.id').onDelete('set null')).execute();
  // Rows from before this column: every one that moved past `queued` had a workflow. A queued one may not have, and
  // starting it again is harmless (a start joins an execution that exists), so the reconciler is left to look.
  await sql`update tasks set workflow_started_at = created_at where status <> 'queued'`.execute(db);
  // The reconciler's scan reads only tasks still waiting for their workflow.
  await sql`create index tasks_unstarted_idx on tasks (created_at) where workflow_started_at is null and status = 'queued'`.execute(db);
  // A task is rerun at most once (a failed rerun is rerun in turn): a repeated or concurrent retry creates nothing.
  await sql`create unique index tasks_retry_of_key on tasks (retry_of) where retry_of is not null`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists tasks_retry_of_key`.execute(db);
  await sql`drop index if exists tasks_unstarted_idx`.execute(db);
  await db.schema.alterTable('tasks').dropColumn('retry_of').execute();
  await db.schema.alterTable('tasks').dropColumn('workflow_started_at').execute();
}

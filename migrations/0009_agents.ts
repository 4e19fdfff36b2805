import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// Agents: a project's named, versioned DAGs of tool steps, and their runs. Every version is kept (a run names the
// version it ran); a run keeps its own copy of the definition and input, so deleting an agent leaves its runs readable.
// Each step item of a run is a real task row (agent_run_steps links them); the run has its own ordered event log.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('agents')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('agents_project_name_key', ['project_id', 'name'])
    .execute();

  await db.schema
    .createTable('agent_versions')
    .addColumn('agent_id', 'uuid', (c) => c.notNull().references('agents.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('definition', 'jsonb', (c) => c.notNull())
    .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('agent_versions_pk', ['agent_id', 'version'])
    .execute();

  await db.schema
    .createTable('agent_runs')
    .addColumn('id', 'uuid', (c) => c.primaryKey())
    .addColumn('project_id', 'uuid', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('agent_id', 'uuid', (c) => c.references('agents.id').onDelete('set null'))
    .addColumn('agent_name', 'text', (c) => c.notNull())
    .addColumn('agent_version', 'integer', (c) => c.notNull())
    .addColumn('definition', 'jsonb', (c) => c.notNull())
    .addColumn('input', 'jsonb', (c) => c.notNull())
    .addColumn('created_by', 'uuid', (c) => c.notNull().references('users.id'))
    .addColumn('idempotency_key', 'text')
    .addColumn('request_hash', 'text')
    .addColumn('workflow_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    // Per step: {status, items?, error?}, written by the run's workflow.
    .addColumn('step_states', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('error', 'jsonb')
    .addColumn('event_seq', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('workflow_started_at', 'timestamptz')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .execute();
  await sql`create index agent_runs_project_idx on agent_runs (project_id, created_at desc)`.execute(db);

  await db.schema
    .createTable('agent_run_steps')
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('agent_runs.id').onDelete('cascade'))
    .addColumn('step_id', 'text', (c) => c.notNull())
    // -1 for a step without forEach; the item's index otherwise.
    .addColumn('item', 'integer', (c) => c.notNull())
    .addColumn('task_id', 'uuid', (c) => c.references('tasks.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull())
    // Output of a step kind that runs without a task (small, capped); tool steps keep theirs in results.
    .addColumn('output', 'jsonb')
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('agent_run_steps_pk', ['run_id', 'step_id', 'item'])
    .execute();
  await sql`create unique index agent_run_steps_task_idx on agent_run_steps (task_id) where task_id is not null`.execute(db);

  await db.schema
    .createTable('agent_run_events')
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('agent_runs.id').onDelete('cascade'))
    .addColumn('seq', 'integer', (c) => c.notNull())
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('data', 'jsonb', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('agent_run_events_pk', ['run_id', 'seq'])
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('agent_run_events').execute();
  await db.schema.dropTable('agent_run_steps').execute();
  await db.schema.dropTable('agent_runs').execute();
  await db.schema.dropTable('agent_versions').execute();
  await db.schema.dropTable('agents').execute();
}

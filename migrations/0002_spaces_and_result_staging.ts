import { sql, type Kysely } from 'kysely';

// Space bindings learn which Space tool serves each server tool; large outputs wait in staging until the blob store
// has them, so a failed upload is retried without running the tool again. Frozen once landed.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('space_bindings').addColumn('tool_map', 'jsonb').execute();
  await db.schema.alterTable('space_bindings').addColumn('missing_tools', sql`text[]`).execute();

  await db.schema
    .createTable('result_staging')
    .addColumn('task_id', 'uuid', (c) => c.primaryKey().references('tasks.id').onDelete('cascade'))
    .addColumn('content', 'bytea', (c) => c.notNull())
    .addColumn('size', 'bigint', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('media_type', 'text', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('result_staging').ifExists().execute();
  await db.schema.alterTable('space_bindings').dropColumn('missing_tools').execute();
  await db.schema.alterTable('space_bindings').dropColumn('tool_map').execute();
}

import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// Registry servers get a visibility (their owner is created_by); platform admins are flagged on users;
// project roles grow from owner/member to owner/admin/member/viewer.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('users').addColumn('is_admin', 'boolean', (c) => c.notNull().defaultTo(false)).execute();

  await db.schema
    .alterTable('mcp_servers')
    .addColumn('visibility', 'text', (c) => c.notNull().defaultTo('private').check(sql`visibility in ('private', 'public')`))
    .execute();
  await db.schema.createIndex('mcp_servers_created_by_idx').on('mcp_servers').column('created_by').execute();

  await sql`alter table project_members drop constraint if exists project_members_role_check`.execute(db);
  await sql`alter table project_members add constraint project_members_role_check check (role in ('owner', 'admin', 'member', 'viewer'))`.execute(db);
  await db.schema.createIndex('project_members_user_idx').on('project_members').column('user_id').execute();

  // Counting a project's active tasks (the per-project limit) reads only non-terminal rows.
  await sql`create index tasks_project_active_idx on tasks (project_id) where status not in ('succeeded', 'failed', 'canceled')`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists tasks_project_active_idx`.execute(db);
  await sql`drop index if exists project_members_user_idx`.execute(db);
  await sql`update project_members set role = 'member' where role in ('admin', 'viewer')`.execute(db);
  await sql`alter table project_members drop constraint if exists project_members_role_check`.execute(db);
  await sql`alter table project_members add constraint project_members_role_check check (role in ('owner', 'member'))`.execute(db);
  await sql`drop index if exists mcp_servers_created_by_idx`.execute(db);
  await db.schema.alterTable('mcp_servers').dropColumn('visibility').execute();
  await db.schema.alterTable('users').dropColumn('is_admin').execute();
}

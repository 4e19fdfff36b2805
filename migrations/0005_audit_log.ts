import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// The audit trail: one row per security-relevant act (sign-ins, keys, registry, members and roles, Space bindings,
// consent, cancellations, retries). Append-only: a trigger refuses UPDATE and DELETE, so neither a bug nor a
// compromised API role can rewrite history. No foreign keys on purpose: entries outlive the projects, users and
// keys they name (a deleted project's trail is still readable by platform admins).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'bigserial', (c) => c.primaryKey())
    .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('actor_user_id', 'uuid')
    .addColumn('actor_login', 'text')
    // How the actor proved who they are: 'user' (an access token), 'api_key', 'system'.
    .addColumn('actor_kind', 'text', (c) => c.notNull())
    .addColumn('actor_key_id', 'text')
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('project_id', 'uuid')
    .addColumn('target_type', 'text')
    .addColumn('target_id', 'text')
    .addColumn('detail', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .addColumn('request_id', 'text')
    .addColumn('ip', 'text')
    .execute();
  await sql`create index audit_log_project_idx on audit_log (project_id, id desc) where project_id is not null`.execute(db);
  await sql`create index audit_log_actor_idx on audit_log (actor_user_id, id desc)`.execute(db);
  await sql`create index audit_log_action_idx on audit_log (action, id desc)`.execute(db);
  await sql`
    create function audit_log_append_only() returns trigger language plpgsql as $$
    begin
      raise exception 'audit_log is append-only';
    end
    $$`.execute(db);
  await sql`create trigger audit_log_no_rewrite before update or delete on audit_log
    for each row execute function audit_log_append_only()`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop trigger if exists audit_log_no_rewrite on audit_log`.execute(db);
  await sql`drop function if exists audit_log_append_only()`.execute(db);
  await db.schema.dropTable('audit_log').execute();
}

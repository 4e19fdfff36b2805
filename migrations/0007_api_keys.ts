import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// API keys for scripts and CI. Only a SHA-256 of the secret is kept: the secret is 32 random bytes, so a plain hash
// is enough (no password stretching needed) and the key is shown once, at creation. A key dies with its user; one
// bound to a project dies with the project.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('api_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('project_id', 'uuid', (c) => c.references('projects.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.check(sql`role in ('viewer', 'member', 'admin', 'owner')`))
    .addColumn('secret_hash', 'bytea', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz')
    .addColumn('last_used_at', 'timestamptz')
    .addColumn('revoked_at', 'timestamptz')
    .execute();
  await sql`create index api_keys_user_idx on api_keys (user_id, created_at desc)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('api_keys').execute();
}

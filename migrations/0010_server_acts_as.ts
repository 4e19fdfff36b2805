import { sql, type Kysely } from 'kysely';

// Frozen once landed: a later change gets a new migration file, never an edit here.
// A registry server may act as the user who submits a task: `acts_as` names the provider whose token (from that
// user's sign-in) goes with each call. Null: the server gets no user token. Only GitHub for now.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .alterTable('mcp_servers')
    .addColumn('acts_as', 'text', (c) => c.check(sql`acts_as in ('github')`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mcp_servers').dropColumn('acts_as').execute();
}

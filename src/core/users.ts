import type { Db } from '../db/create-db.ts';

export interface User {
  id: string;
  login: string;
  displayName: string | null;
}

/** Finds the local user with this login, creating it on first use (how `orchestrator token` gets a subject). */
export async function ensureUser(db: Db, login: string, displayName?: string): Promise<User> {
  await db
    .insertInto('users')
    .values({ login, display_name: displayName ?? login })
    .onConflict((oc) => oc.column('login').doNothing())
    .execute();
  const row = await db.selectFrom('users').select(['id', 'login', 'display_name']).where('login', '=', login).executeTakeFirstOrThrow();
  return { id: row.id, login: row.login, displayName: row.display_name };
}

export async function findUser(db: Db, id: string): Promise<User | undefined> {
  const row = await db.selectFrom('users').select(['id', 'login', 'display_name']).where('id', '=', id).executeTakeFirst();
  return row && { id: row.id, login: row.login, displayName: row.display_name };
}

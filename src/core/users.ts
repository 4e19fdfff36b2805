import type { Db } from '../db/create-db.ts';
import type { CallerScopes } from './caller-scope.ts';

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

/**
 * Platform admins curate the shared registry (only they make a server public). They are named in configuration
 * (ADMIN_LOGINS) or flagged in the database by `orchestrator admin grant|revoke LOGIN`.
 */
export function createUserDirectory(deps: { db: Db; adminLogins: readonly string[]; scopes?: Pick<CallerScopes, 'keepsAdmin'> }) {
  const { db } = deps;
  const configured = new Set(deps.adminLogins);
  return {
    async actor(user: { id: string; login: string }): Promise<{ userId: string; isAdmin: boolean }> {
      // Admin rights pass through an API key only when the key is unlimited.
      if (deps.scopes && !deps.scopes.keepsAdmin()) return { userId: user.id, isAdmin: false };
      if (configured.has(user.login)) return { userId: user.id, isAdmin: true };
      const row = await db.selectFrom('users').select('is_admin').where('id', '=', user.id).executeTakeFirst();
      return { userId: user.id, isAdmin: row?.is_admin === true };
    },

    /** false when no user has that login. */
    async setAdmin(login: string, isAdmin: boolean): Promise<boolean> {
      const r = await db.updateTable('users').set({ is_admin: isAdmin }).where('login', '=', login).executeTakeFirst();
      return r.numUpdatedRows > 0n;
    },
  };
}

export type UserDirectory = ReturnType<typeof createUserDirectory>;

import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import type { ProjectRole } from './roles.ts';

export interface ApiKeyRow {
  id: string;
  user_id: string;
  name: string;
  project_id: string | null;
  role: ProjectRole | null;
  created_at: Date;
  expires_at: Date | null;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

const columns = ['id', 'user_id', 'name', 'project_id', 'role', 'created_at', 'expires_at', 'last_used_at', 'revoked_at'] as const;

export async function insertKey(db: Db, values: Omit<ApiKeyRow, 'created_at' | 'last_used_at' | 'revoked_at'> & { secret_hash: Buffer }): Promise<ApiKeyRow> {
  return db.insertInto('api_keys').values(values).returning(columns).executeTakeFirstOrThrow();
}

/** Keys that still open the door; locks the user's row so two concurrent creations cannot both pass the cap. */
export async function countUsableKeysLocked(db: Db, userId: string): Promise<number> {
  await db.selectFrom('users').select('id').where('id', '=', userId).forUpdate().execute();
  const row = await db
    .selectFrom('api_keys')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', sql<Date>`now()`)]))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

export async function listKeys(db: Db, userId: string): Promise<ApiKeyRow[]> {
  return db.selectFrom('api_keys').select(columns).where('user_id', '=', userId).orderBy('created_at', 'desc').orderBy('id').execute();
}

/** The key with its owner's login and the stored hash: what a bearer check needs. */
export async function findKeyForAuth(db: Db, id: string) {
  return db
    .selectFrom('api_keys as k')
    .innerJoin('users as u', 'u.id', 'k.user_id')
    .select(['k.id', 'k.user_id', 'u.login', 'k.project_id', 'k.role', 'k.secret_hash', 'k.expires_at', 'k.revoked_at', 'k.last_used_at'])
    .where('k.id', '=', id)
    .executeTakeFirst();
}

/** Marks the key revoked; undefined when the user has no such key still active. */
export async function revokeKey(db: Db, userId: string, id: string): Promise<ApiKeyRow | undefined> {
  return db
    .updateTable('api_keys')
    .set({ revoked_at: new Date() })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .where('revoked_at', 'is', null)
    .returning(columns)
    .executeTakeFirst();
}

/** At most one write per key per `everySeconds`: a busy script does not turn every request into an UPDATE. */
export async function touchKey(db: Db, id: string, everySeconds: number): Promise<void> {
  await db
    .updateTable('api_keys')
    .set({ last_used_at: new Date() })
    .where('id', '=', id)
    .where((eb) => eb.or([eb('last_used_at', 'is', null), eb('last_used_at', '<', sql<Date>`now() - make_interval(secs => ${everySeconds})`)]))
    .execute();
}

import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import { InvalidRefreshTokenError } from './auth-errors.ts';

// Opaque refresh tokens: only their SHA-256 is stored, each use rotates the token, and presenting one that was
// already rotated means two parties hold it (one of them a thief): the whole family — every token descended from
// the same sign-in — is revoked, so both must sign in again (OAuth 2.0 Security BCP, refresh token rotation).

const PREFIX = 'ort_';
export const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
const newToken = () => `${PREFIX}${randomBytes(32).toString('base64url')}`;

export type RefreshOutcome = { userId: string; refreshToken: string } | { reuse: { userId: string; familyId: string } };

export function createRefreshTokens(deps: { db: Db; ttlSeconds: number }) {
  const { db, ttlSeconds } = deps;

  async function insert(trx: Db, userId: string, familyId: string): Promise<string> {
    const token = newToken();
    await trx
      .insertInto('refresh_tokens')
      .values({ family_id: familyId, user_id: userId, token_hash: hashToken(token), expires_at: sql`now() + make_interval(secs => ${ttlSeconds})` as never })
      .execute();
    return token;
  }

  return {
    /** A new family, at sign-in. */
    issue(userId: string, trx: Db = db): Promise<string> {
      return insert(trx, userId, randomUUID());
    },

    /**
     * Trades a refresh token for its successor. A rotated token presented again revokes its family and reports the
     * reuse (the caller records it and answers 401); unknown, expired or revoked ones throw InvalidRefreshTokenError.
     */
    async rotate(token: string): Promise<RefreshOutcome> {
      if (!token.startsWith(PREFIX) || token.length > 200) throw new InvalidRefreshTokenError();
      return db.transaction().execute(async (trx) => {
        const row = await trx
          .selectFrom('refresh_tokens')
          .select(['id', 'family_id', 'user_id', 'rotated_at', 'revoked_at', sql<boolean>`expires_at <= now()`.as('expired')])
          .where('token_hash', '=', hashToken(token))
          .forUpdate()
          .executeTakeFirst();
        if (!row || row.revoked_at !== null || row.expired) throw new InvalidRefreshTokenError();
        if (row.rotated_at !== null) {
          await trx.updateTable('refresh_tokens').set({ revoked_at: sql`now()` as never }).where('family_id', '=', row.family_id).where('revoked_at', 'is', null).execute();
          return { reuse: { userId: row.user_id, familyId: row.family_id } };
        }
        await trx.updateTable('refresh_tokens').set({ rotated_at: sql`now()` as never }).where('id', '=', row.id).execute();
        return { userId: row.user_id, refreshToken: await insert(trx, row.user_id, row.family_id) };
      });
    },

    /** Revokes the token's family (logout); the user it belonged to, or undefined when nothing was left to revoke. */
    async revokeFamily(token: string): Promise<string | undefined> {
      const row = await db.selectFrom('refresh_tokens').select(['family_id', 'user_id']).where('token_hash', '=', hashToken(token)).executeTakeFirst();
      if (!row) return undefined;
      const done = await db.updateTable('refresh_tokens').set({ revoked_at: sql`now()` as never }).where('family_id', '=', row.family_id).where('revoked_at', 'is', null).executeTakeFirst();
      return done.numUpdatedRows > 0n ? row.user_id : undefined;
    },
  };
}

export type RefreshTokens = ReturnType<typeof createRefreshTokens>;

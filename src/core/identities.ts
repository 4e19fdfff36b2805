import { randomBytes } from 'node:crypto';
import type { Db } from '../db/create-db.ts';
import { SignInError } from './auth-errors.ts';
import { userGithubTokenAad, userHfTokenAad, type SecretBox } from './sealed-secrets.ts';
import type { User } from './users.ts';

// Provider identities (a GitHub account, a Hub account) and the users they sign in as. SQL for them lives here.

export type Provider = 'github' | 'huggingface';

export interface SignedInIdentity {
  provider: Provider;
  subject: string;
  login: string;
  displayName: string | null;
  accessToken: string;
}

const SHORT: Record<Provider, string> = { github: 'gh', huggingface: 'hf' };
const LOGIN_SHAPE = /^[A-Za-z0-9][\w.-]{0,62}$/;

/** Where each provider's token is sealed, bound to the user's row. */
function sealedColumn(provider: Provider): { column: 'hf_token_sealed' | 'github_token_sealed'; aad: (userId: string) => string } {
  return provider === 'huggingface' ? { column: 'hf_token_sealed', aad: userHfTokenAad } : { column: 'github_token_sealed', aad: userGithubTokenAad };
}

export async function findUserByIdentity(db: Db, provider: Provider, subject: string): Promise<string | undefined> {
  const row = await db.selectFrom('user_identities').select('user_id').where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst();
  return row?.user_id;
}

/**
 * A new user for a first sign-in. The login is the provider's when free; a GitHub "ada" and a Hub "ada" may be
 * different people, so a taken login gets the provider's suffix, then a random one.
 */
export async function createUserFor(db: Db, identity: SignedInIdentity): Promise<User> {
  const base = LOGIN_SHAPE.test(identity.login) ? identity.login.slice(0, 56) : `${SHORT[identity.provider]}-user`;
  const candidates = [base, `${base}-${SHORT[identity.provider]}`, ...Array.from({ length: 5 }, () => `${base}-${randomBytes(3).toString('hex')}`)];
  for (const login of candidates) {
    const row = await db
      .insertInto('users')
      .values({ login, display_name: identity.displayName ?? identity.login })
      .onConflict((oc) => oc.column('login').doNothing())
      .returning(['id', 'login', 'display_name'])
      .executeTakeFirst();
    if (row) {
      await attachIdentity(db, row.id, identity);
      return { id: row.id, login: row.login, displayName: row.display_name };
    }
  }
  throw new Error('no free login for a new user');
}

/** Links the identity to the user; refuses one that belongs to someone else or a second account of a provider. */
export async function attachIdentity(db: Db, userId: string, identity: SignedInIdentity): Promise<void> {
  const owner = await findUserByIdentity(db, identity.provider, identity.subject);
  if (owner !== undefined && owner !== userId) throw new SignInError('IdentityTaken', `this ${identity.provider} account already signs in as another user`);
  if (owner === undefined) {
    const other = await db.selectFrom('user_identities').select('subject').where('user_id', '=', userId).where('provider', '=', identity.provider).executeTakeFirst();
    if (other) throw new SignInError('ProviderAlreadyLinked', `this user already has another ${identity.provider} account linked`);
    await db.insertInto('user_identities').values({ provider: identity.provider, subject: identity.subject, user_id: userId, login: identity.login }).execute();
  }
}

/** After each sign-in: the provider's current login, and its token sealed to this user's row. */
export async function refreshIdentity(db: Db, secrets: SecretBox, userId: string, identity: SignedInIdentity): Promise<void> {
  await db
    .updateTable('user_identities')
    .set({ login: identity.login, last_sign_in_at: new Date() })
    .where('provider', '=', identity.provider)
    .where('subject', '=', identity.subject)
    .execute();
  const { column, aad } = sealedColumn(identity.provider);
  await db.updateTable('users').set({ [column]: secrets.seal(identity.accessToken, aad(userId)) }).where('id', '=', userId).execute();
}

/** The user's token for a provider, opened; undefined when they never signed in with it. */
export async function providerToken(db: Db, secrets: SecretBox, userId: string, provider: Provider): Promise<string | undefined> {
  const { column, aad } = sealedColumn(provider);
  const row = await db.selectFrom('users').select([column]).where('id', '=', userId).executeTakeFirst();
  const sealed = row?.[column];
  return sealed ? secrets.open(sealed, aad(userId)) : undefined;
}

export async function identitiesOf(db: Db, userId: string): Promise<Array<{ provider: string; login: string | null; linkedAt: string }>> {
  const rows = await db.selectFrom('user_identities').select(['provider', 'login', 'created_at']).where('user_id', '=', userId).orderBy('provider').execute();
  return rows.map((r) => ({ provider: r.provider, login: r.login, linkedAt: r.created_at.toISOString() }));
}

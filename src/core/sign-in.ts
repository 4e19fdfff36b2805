import { createHash, randomBytes } from 'node:crypto';
import * as oauth from 'oauth4webapi';
import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import { ProviderRefusedError, ProviderUnreachableError, type OAuthProvider } from '../integrations/oauth/providers.ts';
import type { AuditLog } from './audit-log.ts';
import { InvalidRefreshTokenError, SignInError, UnknownProviderError } from './auth-errors.ts';
import type { TokenService } from './auth-tokens.ts';
import { UnavailableError } from './errors.ts';
import { attachIdentity, createUserFor, findUserByIdentity, identitiesOf, refreshIdentity, type Provider, type SignedInIdentity } from './identities.ts';
import type { RefreshTokens } from './refresh-tokens.ts';
import type { SecretBox } from './sealed-secrets.ts';
import { findUser } from './users.ts';

// Sign-in with a provider: `start` remembers a state, PKCE verifier and nonce and sends the browser to the provider;
// `finish` takes the callback, redeems the code, finds or creates the user (or links the identity to the signed-in
// user who started it) and issues tokens — or, with an app configured, a one-time code the app exchanges for them.

const ATTEMPT_TTL_SECONDS = 600;
const CODE_TTL_SECONDS = 60;
const sha256 = (v: string) => createHash('sha256').update(v, 'utf8').digest('hex');

export interface IssuedTokens {
  accessToken: string;
  tokenType: 'Bearer';
  expiresIn: number;
  refreshToken: string;
  user: { id: string; login: string };
}

/** Where a request came from, for the audit trail. */
export interface RequestOrigin {
  requestId?: string;
  ip?: string;
}

export function createSignIn(deps: {
  db: Db;
  providers: OAuthProvider[];
  secrets: SecretBox;
  tokens: TokenService;
  refresh: RefreshTokens;
  audit: AuditLog;
  publicUrl: string;
  appUrl?: string;
}) {
  const { db, tokens, refresh, audit } = deps;
  const byName = new Map(deps.providers.map((p) => [p.name as string, p]));
  const redirectUri = (provider: string) => `${deps.publicUrl}/v1/auth/${provider}/callback`;

  function provider(name: string): OAuthProvider {
    const found = byName.get(name);
    if (!found) throw new UnknownProviderError(name);
    return found;
  }

  async function issue(user: { id: string; login: string }, trx: Db = db): Promise<IssuedTokens> {
    const refreshToken = await refresh.issue(user.id, trx);
    return { accessToken: await tokens.sign({ sub: user.id, login: user.login }), tokenType: 'Bearer', expiresIn: tokens.ttlSeconds, refreshToken, user };
  }

  async function redeem(p: OAuthProvider, callback: URLSearchParams, attempt: { state: string; codeVerifier: string; nonce: string | null }) {
    try {
      return await p.redeem({ callback, ...attempt, redirectUri: redirectUri(p.name) });
    } catch (err) {
      if (err instanceof ProviderRefusedError) throw new SignInError('SignInRefused', err.message);
      if (err instanceof ProviderUnreachableError) throw new UnavailableError('ProviderUnavailable', `${p.name} could not complete the sign-in; try again`);
      throw err;
    }
  }

  /** The identity becomes a user: the linking user, the user it already signs in as, or a new one. */
  async function settle(identity: SignedInIdentity, linkUserId: string | null, origin: RequestOrigin) {
    return db.transaction().execute(async (trx) => {
      let user: { id: string; login: string };
      let action: 'auth.sign_in' | 'auth.identity_linked' = 'auth.sign_in';
      let created = false;
      if (linkUserId !== null) {
        const linking = await findUser(trx, linkUserId);
        if (!linking) throw new SignInError('InvalidState', 'the user who started linking no longer exists');
        await attachIdentity(trx, linking.id, identity);
        user = linking;
        action = 'auth.identity_linked';
      } else {
        const existing = await findUserByIdentity(trx, identity.provider, identity.subject);
        const found = existing === undefined ? undefined : await findUser(trx, existing);
        created = found === undefined;
        user = found ?? (await createUserFor(trx, identity));
      }
      await refreshIdentity(trx, deps.secrets, user.id, identity);
      await audit.record(
        {
          actor: { kind: 'user', userId: user.id, login: user.login },
          action,
          target: { type: 'user', id: user.id },
          detail: { provider: identity.provider, providerLogin: identity.login, ...(action === 'auth.sign_in' ? { newUser: created } : {}) },
          ...origin,
        },
        trx,
      );
      return { user: { id: user.id, login: user.login }, trx };
    });
  }

  return {
    providers(): Array<{ name: string; loginUrl: string }> {
      return deps.providers.map((p) => ({ name: p.name, loginUrl: `${deps.publicUrl}/v1/auth/${p.name}/login` }));
    },

    /** The provider URL to send the browser to. `linkUserId`: the signed-in user who links this provider. */
    async start(providerName: string, linkUserId?: string): Promise<URL> {
      const p = provider(providerName);
      const state = oauth.generateRandomState();
      const codeVerifier = oauth.generateRandomCodeVerifier();
      const nonce = p.usesNonce ? oauth.generateRandomNonce() : null;
      const url = await p.authorizationUrl({ state, codeVerifier, nonce, redirectUri: redirectUri(p.name) }).catch((err: unknown) => {
        if (err instanceof ProviderUnreachableError) throw new UnavailableError('ProviderUnavailable', `${p.name} sign-in is unavailable; try again`);
        throw err;
      });
      await db
        .insertInto('sign_in_attempts')
        .values({
          state_hash: sha256(state),
          provider: p.name,
          code_verifier: codeVerifier,
          nonce,
          link_user_id: linkUserId ?? null,
          expires_at: sql`now() + make_interval(secs => ${ATTEMPT_TTL_SECONDS})` as never,
        })
        .execute();
      return url;
    },

    /**
     * Completes a sign-in from the provider's callback query. Each state is good for one callback: a replayed
     * callback, an unknown or expired state, or one started for another provider is refused before the provider
     * is asked anything.
     */
    async finish(providerName: string, callback: URLSearchParams, origin: RequestOrigin): Promise<{ tokens: IssuedTokens } | { redirect: string }> {
      const p = provider(providerName);
      const state = callback.get('state');
      if (!state || state.length > 512) throw new SignInError('InvalidState', 'the sign-in state is missing or unknown; start the sign-in again');
      const attempt = await db
        .updateTable('sign_in_attempts')
        .set({ consumed_at: sql`now()` as never })
        .where('state_hash', '=', sha256(state))
        .where('provider', '=', p.name)
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', sql`now()` as never)
        .returning(['code_verifier', 'nonce', 'link_user_id'])
        .executeTakeFirst();
      if (!attempt) throw new SignInError('InvalidState', 'the sign-in state is missing, expired or already used; start the sign-in again');
      const got = await redeem(p, callback, { state, codeVerifier: attempt.code_verifier, nonce: attempt.nonce });
      const identity: SignedInIdentity = { provider: p.name as Provider, ...got };
      const { user } = await settle(identity, attempt.link_user_id, origin);
      if (deps.appUrl === undefined) return { tokens: await issue(user) };
      const code = randomBytes(32).toString('base64url');
      await db
        .insertInto('sign_in_codes')
        .values({ code_hash: sha256(code), user_id: user.id, expires_at: sql`now() + make_interval(secs => ${CODE_TTL_SECONDS})` as never })
        .execute();
      const target = new URL(deps.appUrl);
      target.searchParams.set('code', code);
      return { redirect: target.href };
    },

    /** The app trades the one-time code from its redirect for tokens; a code works once, for a minute. */
    async exchange(code: string): Promise<IssuedTokens> {
      const row = await db
        .updateTable('sign_in_codes')
        .set({ consumed_at: sql`now()` as never })
        .where('code_hash', '=', sha256(code))
        .where('consumed_at', 'is', null)
        .where('expires_at', '>', sql`now()` as never)
        .returning('user_id')
        .executeTakeFirst();
      const user = row && (await findUser(db, row.user_id));
      if (!user) throw new SignInError('InvalidCode', 'the sign-in code is unknown, expired or already used');
      return issue(user);
    },

    async refresh(refreshToken: string, origin: RequestOrigin): Promise<IssuedTokens> {
      const outcome = await refresh.rotate(refreshToken);
      if ('reuse' in outcome) {
        const user = await findUser(db, outcome.reuse.userId);
        await audit.record({
          actor: { kind: 'user', userId: outcome.reuse.userId, ...(user ? { login: user.login } : {}) },
          action: 'auth.refresh_reuse_detected',
          target: { type: 'refresh_token_family', id: outcome.reuse.familyId },
          ...origin,
        });
        throw new InvalidRefreshTokenError();
      }
      const user = await findUser(db, outcome.userId);
      if (!user) throw new InvalidRefreshTokenError();
      return {
        accessToken: await tokens.sign({ sub: user.id, login: user.login }),
        tokenType: 'Bearer',
        expiresIn: tokens.ttlSeconds,
        refreshToken: outcome.refreshToken,
        user: { id: user.id, login: user.login },
      };
    },

    /** Ends the sign-in the refresh token belongs to; an unknown token is not an error (logging out twice is fine). */
    async logout(refreshToken: string, origin: RequestOrigin): Promise<void> {
      const userId = await refresh.revokeFamily(refreshToken);
      if (userId === undefined) return;
      const user = await findUser(db, userId);
      await audit.record({ actor: { kind: 'user', userId, ...(user ? { login: user.login } : {}) }, action: 'auth.logout', target: { type: 'user', id: userId }, ...origin });
    },

    async me(userId: string) {
      const user = await findUser(db, userId);
      if (!user) throw new InvalidRefreshTokenError();
      return { id: user.id, login: user.login, displayName: user.displayName, identities: await identitiesOf(db, userId) };
    },
  };
}

export type SignIn = ReturnType<typeof createSignIn>;

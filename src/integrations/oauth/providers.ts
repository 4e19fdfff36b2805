import * as oauth from 'oauth4webapi';
import { isLoopbackUrl } from '../../lib/loopback-host.ts';

// The two sign-in providers, spoken to with oauth4webapi: authorization code + PKCE (S256) + state for both; the Hub
// is an OpenID Connect provider (discovery document, ID token), GitHub is plain OAuth 2.0 plus its /user API.

export type ProviderName = 'github' | 'huggingface';

/** What a provider tells us about who signed in, and the token it issued for acting as them. */
export interface ProviderIdentity {
  subject: string;
  login: string;
  displayName: string | null;
  accessToken: string;
  scopes: string | null;
}

/** The provider answered, and said no (error in the callback, code or verifier refused): the caller's request was bad. */
export class ProviderRefusedError extends Error {
  override name = 'ProviderRefusedError';
}

/** The provider could not be reached or answered nonsense: not the caller's fault. */
export class ProviderUnreachableError extends Error {
  override name = 'ProviderUnreachableError';
}

export interface OAuthProvider {
  readonly name: ProviderName;
  authorizationUrl(p: { state: string; codeVerifier: string; nonce: string | null; redirectUri: string }): Promise<URL>;
  /** Redeems the callback's code; `callback` is the query the provider sent back to us. */
  redeem(p: { callback: URLSearchParams; state: string; codeVerifier: string; nonce: string | null; redirectUri: string }): Promise<ProviderIdentity>;
  /** Whether sign-in asks for a nonce (OpenID Connect). */
  readonly usesNonce: boolean;
}

// Plain http is allowed to this machine only (local stand-ins in tests and development); providers are https.
const insecureFor = (url: URL) => (url.protocol === 'http:' && isLoopbackUrl(url) ? { [oauth.allowInsecureRequests]: true } : {});

/** Maps oauth4webapi's failures onto "the provider refused" and "the provider is unreachable". */
function classify(err: unknown): Error {
  if (err instanceof ProviderRefusedError || err instanceof ProviderUnreachableError) return err;
  if (err instanceof oauth.AuthorizationResponseError || err instanceof oauth.ResponseBodyError) {
    // `error` is an OAuth error code (access_denied, invalid_grant): safe to show; the description is not repeated.
    const code = /^[\w.-]{1,64}$/.test(err.error) ? err.error : 'error';
    return new ProviderRefusedError(`the provider refused the sign-in (${code})`);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) return new ProviderRefusedError('the provider refused the sign-in');
  // A 200 without a token (GitHub reports bad codes and verifiers this way) or a callback that fails validation.
  if (err instanceof oauth.OperationProcessingError) return new ProviderRefusedError('the provider did not accept the sign-in');
  return new ProviderUnreachableError('the provider could not be reached');
}

const scopeParam = (scopes: string) => scopes.split(/[\s,]+/).filter(Boolean).join(' ');

export function githubProvider(cfg: { clientId: string; clientSecret: string; url: string; apiUrl: string; scopes: string }): OAuthProvider {
  const as: oauth.AuthorizationServer = {
    issuer: cfg.url,
    authorization_endpoint: `${cfg.url}/login/oauth/authorize`,
    token_endpoint: `${cfg.url}/login/oauth/access_token`,
  };
  const client: oauth.Client = { client_id: cfg.clientId };
  const auth = oauth.ClientSecretPost(cfg.clientSecret);
  return {
    name: 'github',
    usesNonce: false,
    async authorizationUrl({ state, codeVerifier, redirectUri }) {
      const url = new URL(as.authorization_endpoint!);
      url.searchParams.set('client_id', cfg.clientId);
      url.searchParams.set('redirect_uri', redirectUri);
      url.searchParams.set('scope', scopeParam(cfg.scopes));
      url.searchParams.set('state', state);
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
      url.searchParams.set('code_challenge_method', 'S256');
      url.searchParams.set('allow_signup', 'true');
      return url;
    },
    async redeem({ callback, state, codeVerifier, redirectUri }) {
      try {
        const params = oauth.validateAuthResponse(as, client, callback, state);
        const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, redirectUri, codeVerifier, insecureFor(new URL(as.token_endpoint!)));
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, res);
        const userUrl = new URL(`${cfg.apiUrl}/user`);
        const userRes = await fetch(userUrl, {
          headers: { Authorization: `Bearer ${tokens.access_token}`, Accept: 'application/vnd.github+json', 'User-Agent': 'orchestrator' },
          signal: AbortSignal.timeout(10_000),
        });
        if (!userRes.ok) throw new ProviderUnreachableError(`GitHub /user answered ${userRes.status}`);
        const user = (await userRes.json()) as { id?: unknown; login?: unknown; name?: unknown };
        if ((typeof user.id !== 'number' && typeof user.id !== 'string') || typeof user.login !== 'string') {
          throw new ProviderUnreachableError('GitHub /user answered without an id and login');
        }
        return {
          subject: String(user.id),
          login: user.login,
          displayName: typeof user.name === 'string' ? user.name : null,
          accessToken: tokens.access_token,
          scopes: tokens.scope ?? null,
        };
      } catch (err) {
        throw classify(err);
      }
    },
  };
}

/** The Hub as an OpenID Connect provider: endpoints come from its discovery document, fetched once and kept. */
export function huggingFaceProvider(cfg: { clientId: string; clientSecret: string; issuer: string; scopes: string }): OAuthProvider {
  const issuer = new URL(cfg.issuer);
  const client: oauth.Client = { client_id: cfg.clientId };
  // client_secret_post: Basic auth form-encodes the client id (RFC 6749 §2.3.1), which some servers do not decode.
  const auth = oauth.ClientSecretPost(cfg.clientSecret);
  let discovered: Promise<oauth.AuthorizationServer> | undefined;
  const server = () => {
    discovered ??= oauth
      .discoveryRequest(issuer, { algorithm: 'oidc', ...insecureFor(issuer) })
      .then((res) => oauth.processDiscoveryResponse(issuer, res))
      .catch((err: unknown) => {
        discovered = undefined; // try again on the next sign-in
        throw new ProviderUnreachableError(`the Hub's OpenID configuration could not be read (${(err as Error).name})`);
      });
    return discovered;
  };
  return {
    name: 'huggingface',
    usesNonce: true,
    async authorizationUrl({ state, codeVerifier, nonce, redirectUri }) {
      const as = await server();
      if (!as.authorization_endpoint) throw new ProviderUnreachableError('the Hub names no authorization endpoint');
      const url = new URL(as.authorization_endpoint);
      url.searchParams.set('client_id', cfg.clientId);
      url.searchParams.set('redirect_uri', redirectUri);
      url.searchParams.set('response_type', 'code');
      url.searchParams.set('scope', scopeParam(cfg.scopes));
      url.searchParams.set('state', state);
      if (nonce) url.searchParams.set('nonce', nonce);
      url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(codeVerifier));
      url.searchParams.set('code_challenge_method', 'S256');
      return url;
    },
    async redeem({ callback, state, codeVerifier, nonce, redirectUri }) {
      const as = await server();
      try {
        const params = oauth.validateAuthResponse(as, client, callback, state);
        const res = await oauth.authorizationCodeGrantRequest(as, client, auth, params, redirectUri, codeVerifier, insecureFor(new URL(as.token_endpoint!)));
        const tokens = await oauth.processAuthorizationCodeResponse(as, client, res, { expectedNonce: nonce ?? oauth.expectNoNonce, requireIdToken: true });
        const claims = oauth.getValidatedIdTokenClaims(tokens)!;
        const login = typeof claims.preferred_username === 'string' ? claims.preferred_username : undefined;
        if (!login) throw new ProviderUnreachableError('the Hub ID token has no preferred_username');
        return {
          subject: claims.sub,
          login,
          displayName: typeof claims.name === 'string' ? claims.name : null,
          accessToken: tokens.access_token,
          scopes: tokens.scope ?? null,
        };
      } catch (err) {
        throw classify(err);
      }
    },
  };
}

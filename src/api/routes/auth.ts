import Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import { InvalidTokenError, type TokenService } from '../../core/auth-tokens.ts';
import type { SignIn } from '../../core/sign-in.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { Problem } from '../problem.ts';

// Sign-in routes: public (no bearer needed), limited per address. A bearer sent to a login route means "link this
// provider to my account": the callback then adds the identity to that user instead of signing someone in.

const providerParams = z.strictObject({ provider: z.string().min(1).max(40) });
const opaque = z.string().min(1).max(512).regex(/^[\w.~-]+$/, 'must be an opaque token');
const codeBody = z.strictObject({ code: opaque });
const refreshBody = z.strictObject({ refreshToken: opaque });

const tokensSchema = z.object({
  accessToken: z.string(),
  tokenType: z.literal('Bearer'),
  expiresIn: z.number().int(),
  refreshToken: z.string(),
  user: z.object({ id: z.string(), login: z.string() }),
});
const providersSchema = z.object({ items: z.array(z.object({ name: z.string(), loginUrl: z.string() })) });
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

const noStore = (ctx: Koa.Context) => ctx.set('Cache-Control', 'no-store');
const origin = (ctx: Koa.Context) => ({ requestId: (ctx.state as Partial<AppState>).requestId, ip: ctx.ip });

export function authRoutes(deps: { signIn: SignIn; tokens: TokenService }) {
  const router = new Router<AppState>();
  const { signIn } = deps;

  router.get('/v1/auth/providers', (ctx) => {
    ctx.body = { items: signIn.providers() };
  });

  router.get('/v1/auth/:provider/login', async (ctx) => {
    const { provider } = providerParams.parse(ctx.params);
    const linkUserId = await linkingUser(ctx, deps.tokens);
    const url = await signIn.start(provider, linkUserId);
    noStore(ctx);
    // An app that fetches this (to link with its bearer) reads the URL; a browser follows the redirect.
    if (ctx.accepts('html', 'json') === 'json') {
      ctx.body = { authorizationUrl: url.href };
      return;
    }
    ctx.redirect(url.href);
  });

  router.get('/v1/auth/:provider/callback', async (ctx) => {
    const { provider } = providerParams.parse(ctx.params);
    const outcome = await signIn.finish(provider, new URLSearchParams(ctx.querystring), origin(ctx));
    noStore(ctx);
    if ('redirect' in outcome) ctx.redirect(outcome.redirect);
    else ctx.body = outcome.tokens;
  });

  router.post('/v1/auth/exchange', async (ctx) => {
    const { code } = codeBody.parse(ctx.request.body);
    noStore(ctx);
    ctx.body = await signIn.exchange(code);
  });

  router.post('/v1/auth/refresh', async (ctx) => {
    const { refreshToken } = refreshBody.parse(ctx.request.body);
    noStore(ctx);
    ctx.body = await signIn.refresh(refreshToken, origin(ctx));
  });

  router.post('/v1/auth/logout', async (ctx) => {
    const { refreshToken } = refreshBody.parse(ctx.request.body);
    await signIn.logout(refreshToken, origin(ctx));
    ctx.status = 204;
  });

  router.get('/.well-known/jwks.json', (ctx) => {
    ctx.set('Cache-Control', 'public, max-age=300');
    ctx.body = deps.tokens.publicJwks();
  });

  return router;
}

/** The user a login request links to: none without a bearer; a bad bearer is refused rather than ignored. */
async function linkingUser(ctx: Koa.Context, tokens: TokenService): Promise<string | undefined> {
  const header = ctx.get('Authorization');
  if (header === '') return undefined;
  const token = BEARER.exec(header)?.[1];
  try {
    if (token === undefined) throw new InvalidTokenError('malformed token');
    return (await tokens.verify(token)).userId;
  } catch (err) {
    if (!(err instanceof InvalidTokenError)) throw err;
    throw new Problem(401, 'InvalidToken', 'Invalid Token', `linking needs a valid bearer: ${err.reason}`, undefined, {
      headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
    });
  }
}

/** The signed-in caller and the provider accounts linked to them. */
export function meRoutes(deps: { signIn: SignIn }) {
  const router = new Router<AppState>({ prefix: '/v1/me' });
  router.get('/', async (ctx) => {
    ctx.body = await deps.signIn.me(ctx.state.user.id);
  });
  return router;
}

const meSchema = z.object({
  id: z.string(),
  login: z.string(),
  displayName: z.string().nullable(),
  identities: z.array(z.object({ provider: z.string(), login: z.string().nullable(), linkedAt: z.string() })),
});

const tags = ['auth'];
export const authOperations: ApiOperation[] = [
  { method: 'get', path: '/v1/auth/providers', operationId: 'listSignInProviders', summary: 'The configured sign-in providers', tags, auth: 'none', responses: { 200: { description: 'providers', schema: providersSchema } } },
  {
    method: 'get',
    path: '/v1/auth/{provider}/login',
    operationId: 'startSignIn',
    summary: 'Start signing in with a provider (302 to it); with a bearer, link the provider to that account',
    description: 'Sends the browser to the provider with state and a PKCE challenge. `Accept: application/json` answers `{authorizationUrl}` instead of redirecting.',
    tags,
    auth: 'none',
    params: providerParams,
    responses: { 302: { description: 'to the provider' }, 200: { description: 'the provider URL', schema: z.object({ authorizationUrl: z.string() }) } },
    problems: [400, 401, 404, 502],
  },
  {
    method: 'get',
    path: '/v1/auth/{provider}/callback',
    operationId: 'finishSignIn',
    summary: "The provider's callback: tokens as JSON, or a 302 to APP_URL with a one-time code",
    tags,
    auth: 'none',
    params: providerParams,
    responses: { 200: { description: 'tokens', schema: tokensSchema }, 302: { description: 'to the app, with ?code=' } },
    problems: [400, 404, 409, 502],
  },
  { method: 'post', path: '/v1/auth/exchange', operationId: 'exchangeSignInCode', summary: 'Trade the one-time code from the app redirect for tokens', tags, auth: 'none', body: codeBody, example: { code: 'Qm9vaw' }, responses: { 200: { description: 'tokens', schema: tokensSchema } }, problems: [400] },
  { method: 'post', path: '/v1/auth/refresh', operationId: 'refreshTokens', summary: 'Rotate a refresh token: a new access and refresh token', tags, auth: 'none', body: refreshBody, example: { refreshToken: 'ort_abc' }, responses: { 200: { description: 'tokens', schema: tokensSchema } }, problems: [400, 401] },
  { method: 'post', path: '/v1/auth/logout', operationId: 'logout', summary: "Revoke the refresh token and every token rotated from the same sign-in", tags, auth: 'none', body: refreshBody, example: { refreshToken: 'ort_abc' }, responses: { 204: { description: 'signed out' } }, problems: [400] },
  { method: 'get', path: '/.well-known/jwks.json', operationId: 'jwks', summary: 'Public keys that verify access tokens (ES256)', tags, auth: 'none', responses: { 200: { description: 'JWK set', schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }) } } },
  { method: 'get', path: '/v1/me', operationId: 'me', summary: 'The signed-in user and their linked provider accounts', tags, auth: 'bearer', responses: { 200: { description: 'the user', schema: meSchema } } },
];

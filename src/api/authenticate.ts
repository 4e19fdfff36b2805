import type Koa from 'koa';
import { InvalidTokenError } from '../core/auth-tokens.ts';
import type { KeyLimits } from '../core/caller-scope.ts';
import type { Logger } from '../lib/logger.ts';
import { Problem } from './problem.ts';

export interface AppState {
  /** `key`: the caller came in with an API key, limited as it says. */
  user: { id: string; login: string; key?: KeyLimits };
  requestId: string;
  log: Logger;
}

// RFC 6750 §2.1: b64token after the scheme, nothing else.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

/** Limits around authentication: checked before a bearer is verified, and told of each failure (may throw a 429). */
export interface AuthenticationHooks {
  beforeVerify?(ctx: Koa.Context): void;
  onFailure?(ctx: Koa.Context): Promise<void>;
}

type Verified = { userId: string; login: string; key?: KeyLimits };

export function authenticate(tokens: { verify(t: string): Promise<Verified> }, hooks: AuthenticationHooks = {}): Koa.Middleware {
  return async function requireBearer(ctx, next) {
    const header = ctx.get('Authorization');
    if (header === '' || !/^Bearer(\s|$)/i.test(header)) {
      await hooks.onFailure?.(ctx);
      throw new Problem(401, 'Unauthenticated', 'Unauthenticated', 'send Authorization: Bearer <token>', undefined, {
        headers: { 'WWW-Authenticate': 'Bearer' },
      });
    }
    const token = BEARER.exec(header)?.[1];
    hooks.beforeVerify?.(ctx);
    let verified: Verified;
    try {
      if (token === undefined) throw new InvalidTokenError('malformed token');
      verified = await tokens.verify(token);
    } catch (err) {
      if (!(err instanceof InvalidTokenError)) throw err;
      await hooks.onFailure?.(ctx);
      // Keep the header a valid quoted-string whatever a verifier put in its reason.
      const description = err.reason.replace(/[^\x20\x21\x23-\x5B\x5D-\x7E]/g, '');
      throw new Problem(401, 'InvalidToken', 'Invalid Token', err.reason, undefined, {
        headers: { 'WWW-Authenticate': `Bearer error="invalid_token", error_description="${description}"` },
      });
    }
    const state = ctx.state as Partial<AppState>;
    state.user = { id: verified.userId, login: verified.login, ...(verified.key && { key: verified.key }) };
    return next();
  };
}

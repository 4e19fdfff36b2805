import type Koa from 'koa';
import type { CallerScopes } from '../core/caller-scope.ts';
import type { AppState } from './authenticate.ts';

/** Runs the rest of an authenticated request inside the caller's scope: who they are, their key's limits, the request. */
export function enterCallerScope(scopes: CallerScopes): Koa.Middleware {
  return function withCallerScope(ctx, next) {
    const { user, requestId } = ctx.state as AppState;
    const actor = user.key
      ? { kind: 'api_key' as const, userId: user.id, login: user.login, keyId: user.key.id }
      : { kind: 'user' as const, userId: user.id, login: user.login };
    return scopes.run({ actor, ...(user.key && { key: user.key }), requestId, ip: ctx.ip }, next);
  };
}

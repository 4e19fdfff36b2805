import type Koa from 'koa';
import { LimitExceededError, type LimitDecision, type LimitPolicy, type Limits } from '../core/limits.ts';
import type { AppState } from './authenticate.ts';
import { Problem } from './problem.ts';

// Header syntax follows draft-ietf-httpapi-ratelimit-headers-10 (September 2025): `RateLimit-Policy` lists quota
// policies as `"name";q=<quota>;w=<window in s>` and `RateLimit` the caller's current state as
// `"name";r=<remaining>;t=<seconds until more quota>`. Limits on things held at once (event streams, active tasks)
// carry no window and the quota unit `qu="concurrent-requests"`. Both fields are Structured Field lists, so each
// policy is appended as its own field line.

export function policyField(p: LimitPolicy): string {
  return p.windowSeconds === undefined ? `"${p.name}";q=${p.quota};qu="concurrent-requests"` : `"${p.name}";q=${p.quota};w=${p.windowSeconds}`;
}

export function stateField(p: LimitPolicy, remaining: number, resetSeconds: number): string {
  return `"${p.name}";r=${remaining};t=${resetSeconds}`;
}

/** The 429 for a refusal: Retry-After, both RateLimit fields and a stable code (RateLimited, TooManyActiveTasks, TooManyStreams). */
export function limitProblem(err: LimitExceededError, extra: Record<string, unknown>): Problem {
  const { policy, retryAfterSeconds } = err.decision;
  return new Problem(429, err.code, 'Too Many Requests', err.message, { ...extra, retryAfter: retryAfterSeconds }, {
    headers: {
      'Retry-After': String(retryAfterSeconds),
      'RateLimit-Policy': policyField(policy),
      RateLimit: stateField(policy, 0, retryAfterSeconds),
    },
  });
}

/** Throws the refusal; on success tells the caller how much of a rate is left. */
function apply(ctx: Koa.Context, decision: LimitDecision): void {
  if (!decision.allowed) throw new LimitExceededError(decision);
  if (decision.remaining === undefined) return;
  ctx.append('RateLimit-Policy', policyField(decision.policy));
  ctx.append('RateLimit', stateField(decision.policy, decision.remaining, decision.resetSeconds ?? 0));
}

/** A route guard after `authenticate`: counts the request against the user's limit. */
export function limitPerUser(decide: (userId: string) => Promise<LimitDecision>): Koa.Middleware {
  return async function limitUser(ctx, next) {
    apply(ctx, await decide((ctx.state as AppState).user.id));
    return next();
  };
}

/** Counts a request that has no authenticated user against its address (health routes, unknown paths). */
export function limitPerAddress(limits: Pick<Limits, 'anonymous'>): Koa.Middleware {
  return async function limitAddress(ctx, next) {
    apply(ctx, await limits.anonymous(ctx.ip));
    return next();
  };
}

/**
 * Hooks for `authenticate`: an address over the anonymous limit gets no token checked (a 429 instead), and every
 * failed authentication counts against its address, so token guessing is bounded too.
 */
export function authenticationLimits(limits: Pick<Limits, 'anonymous' | 'anonymousBlocked'>) {
  return {
    beforeVerify(ctx: Koa.Context): void {
      const blocked = limits.anonymousBlocked(ctx.ip);
      if (blocked) apply(ctx, blocked);
    },
    async onFailure(ctx: Koa.Context): Promise<void> {
      apply(ctx, await limits.anonymous(ctx.ip));
    },
  };
}

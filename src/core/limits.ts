import { randomUUID } from 'node:crypto';
import { RateLimiterRes } from 'rate-limiter-flexible';
import { DomainError } from './errors.ts';
import type { LimitStore } from './limit-store.ts';

// Per-tenant limits, so one user, project or address cannot exhaust the platform. Rates are fixed windows counted in
// the limit store (Redis, shared by every API replica, or memory in a lone process); concurrency of event streams is a
// set of leases in the same store; active tasks are
// counted in Postgres by the task service. Every check returns a decision; the API turns a refusal into a 429.

export const LIMIT_NAMES = ['requests', 'submissions', 'anonymous', 'active_tasks', 'streams'] as const;
export type LimitName = (typeof LIMIT_NAMES)[number];

export interface LimitPolicy {
  name: LimitName;
  quota: number;
  /** Window of a rate, in seconds; absent for a concurrency limit (a count of things held at once). */
  windowSeconds?: number;
}

export type LimitDecision =
  | { allowed: true; policy: LimitPolicy; remaining?: number; resetSeconds?: number }
  | { allowed: false; policy: LimitPolicy; retryAfterSeconds: number };

/** Thrown by services (and the API glue) when a limit refuses: the API maps it to a 429. */
export class LimitExceededError extends DomainError {
  constructor(readonly decision: Extract<LimitDecision, { allowed: false }>) {
    super(
      decision.policy.name === 'active_tasks' ? 'TooManyActiveTasks' : decision.policy.name === 'streams' ? 'TooManyStreams' : 'RateLimited',
      describe(decision.policy),
      { limit: decision.policy.name, quota: decision.policy.quota, ...(decision.policy.windowSeconds ? { windowSeconds: decision.policy.windowSeconds } : {}) },
    );
  }
}

function describe(p: LimitPolicy): string {
  switch (p.name) {
    case 'requests':
      return `more than ${p.quota} requests in ${p.windowSeconds} s`;
    case 'submissions':
      return `more than ${p.quota} task submissions in ${p.windowSeconds} s`;
    case 'anonymous':
      return `more than ${p.quota} unauthenticated requests from this address in ${p.windowSeconds} s`;
    case 'active_tasks':
      return `the project already has ${p.quota} active tasks; wait for one to finish or cancel one`;
    case 'streams':
      return `already ${p.quota} open event streams; close one first`;
  }
}

/**
 * A concurrency limit frees up when something ends, which no clock predicts: clients are told to look again after
 * this many seconds.
 */
const CONCURRENCY_RETRY_AFTER_S = 5;
/** Bounds the memory of blocked addresses under a flood from many of them. */
const MAX_REMEMBERED_IPS = 10_000;

export interface LimitSettings {
  enabled: boolean;
  windowSeconds: number;
  requestsPerUser: number;
  submissionsPerUser: number;
  anonymousPerIp: number;
  activeTasksPerProject: number;
  streamsPerUser: number;
  /** How long a stream's slot outlives its last renewal (renewed on every SSE heartbeat). */
  streamLeaseMs: number;
}

export interface StreamSlot {
  decision: LimitDecision;
  renew(): Promise<void>;
  release(): Promise<void>;
}

/** A limit whose store cannot answer lets the request through (fail open) rather than hold it or answer 500. */
export function createLimits(deps: {
  store: LimitStore;
  keyPrefix: string;
  settings: LimitSettings;
  onRejected?: (limit: LimitName) => void;
  onStoreError?: (limit: LimitName, err: unknown) => void;
}) {
  const { store, settings } = deps;
  const prefix = `${deps.keyPrefix}limits`;
  const policies = {
    requests: { name: 'requests', quota: settings.requestsPerUser, windowSeconds: settings.windowSeconds },
    submissions: { name: 'submissions', quota: settings.submissionsPerUser, windowSeconds: settings.windowSeconds },
    anonymous: { name: 'anonymous', quota: settings.anonymousPerIp, windowSeconds: settings.windowSeconds },
    active_tasks: { name: 'active_tasks', quota: settings.activeTasksPerProject },
    streams: { name: 'streams', quota: settings.streamsPerUser },
  } satisfies Record<LimitName, LimitPolicy>;

  const limiter = (p: LimitPolicy) => store.rateLimiter({ keyPrefix: `${prefix}:${p.name}`, points: p.quota, durationSeconds: p.windowSeconds! });
  const limiters = { requests: limiter(policies.requests), submissions: limiter(policies.submissions), anonymous: limiter(policies.anonymous) };

  const refuse = (policy: LimitPolicy, retryAfterSeconds: number): LimitDecision => {
    deps.onRejected?.(policy.name);
    return { allowed: false, policy, retryAfterSeconds: Math.max(1, retryAfterSeconds) };
  };
  const allowAll = (policy: LimitPolicy): LimitDecision => ({ allowed: true, policy });

  // Addresses this process saw go over the anonymous limit, until their window ends. A bearer from one of them is
  // refused before it is verified: otherwise a guesser would still tell a right token (200) from wrong ones (429).
  const blockedIps = new Map<string, number>();
  const rememberBlocked = (ip: string, retryAfterSeconds: number) => {
    if (blockedIps.size >= MAX_REMEMBERED_IPS) {
      const now = Date.now();
      for (const [k, until] of blockedIps) if (until <= now) blockedIps.delete(k);
      if (blockedIps.size >= MAX_REMEMBERED_IPS) blockedIps.clear();
    }
    blockedIps.set(ip, Date.now() + retryAfterSeconds * 1000);
  };

  async function consume(name: 'requests' | 'submissions' | 'anonymous', key: string, points = 1): Promise<LimitDecision> {
    const policy = policies[name];
    if (!settings.enabled) return allowAll(policy);
    try {
      const res = await limiters[name].consume(key, points);
      return { allowed: true, policy, remaining: res.remainingPoints, resetSeconds: Math.ceil(res.msBeforeNext / 1000) };
    } catch (err) {
      if (err instanceof RateLimiterRes) {
        const retryAfter = Math.ceil(err.msBeforeNext / 1000);
        if (name === 'anonymous') rememberBlocked(key, retryAfter);
        return refuse(policy, retryAfter);
      }
      deps.onStoreError?.(name, err);
      return allowAll(policy);
    }
  }

  const noSlot = async () => undefined;

  return {
    enabled: settings.enabled,
    /** Authenticated requests per user per window. */
    request: (userId: string) => consume('requests', userId),
    /** Task submissions per user per window; a bulk retry counts each task it creates (`count`). */
    submission: (userId: string, count = 1) => consume('submissions', userId, count),
    /** Requests per address that reach no authenticated route, or fail authentication. */
    anonymous: (ip: string) => consume('anonymous', ip),
    /** A refusal when the address is over the anonymous limit (as this process last saw it); no store call. */
    anonymousBlocked(ip: string): LimitDecision | undefined {
      const until = blockedIps.get(ip);
      if (until === undefined) return undefined;
      const left = until - Date.now();
      if (left <= 0) {
        blockedIps.delete(ip);
        return undefined;
      }
      return refuse(policies.anonymous, Math.ceil(left / 1000));
    },

    /** Active tasks per project; undefined when limits are off, so the caller need not count. */
    activeTasksQuota: settings.enabled ? settings.activeTasksPerProject : undefined,
    /** The verdict on a project that already has `active` active tasks and wants one more. */
    activeTasks(active: number): LimitDecision {
      const policy = policies.active_tasks;
      if (!settings.enabled) return allowAll(policy);
      if (active >= policy.quota) return refuse(policy, CONCURRENCY_RETRY_AFTER_S);
      return { allowed: true, policy, remaining: policy.quota - active - 1 };
    },

    /** Takes one of the user's event-stream slots; renew it on each heartbeat, release it when the stream closes. */
    async openStream(userId: string): Promise<StreamSlot> {
      const policy = policies.streams;
      if (!settings.enabled) return { decision: allowAll(policy), renew: noSlot, release: noSlot };
      const key = `${prefix}:streams:${userId}`;
      const id = randomUUID();
      let held: boolean;
      try {
        held = await store.openStream(key, id, settings.streamLeaseMs, policy.quota);
      } catch (err) {
        deps.onStoreError?.('streams', err);
        return { decision: allowAll(policy), renew: noSlot, release: noSlot };
      }
      if (!held) return { decision: refuse(policy, CONCURRENCY_RETRY_AFTER_S), renew: noSlot, release: noSlot };
      return {
        decision: { allowed: true, policy },
        renew: async () => {
          await store.renewStream(key, id, settings.streamLeaseMs).catch((err: unknown) => deps.onStoreError?.('streams', err));
        },
        release: async () => {
          await store.releaseStream(key, id).catch((err: unknown) => deps.onStoreError?.('streams', err));
        },
      };
    },
  };
}

export type Limits = ReturnType<typeof createLimits>;

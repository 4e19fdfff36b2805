import type { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { createLeaseSets } from './lease-sets.ts';

/**
 * Where limits count: Redis, shared by every API replica, or this process's memory when it runs alone. Rates are
 * rate-limiter-flexible fixed windows; event streams are leases with a cap per key.
 */
export interface LimitStore {
  rateLimiter(opts: { keyPrefix: string; points: number; durationSeconds: number }): RateLimiterAbstract;
  /** Takes a lease for `id` under `key` unless `max` live leases are held there already. */
  openStream(key: string, id: string, leaseMs: number, max: number): Promise<boolean>;
  /** Extends a lease still in the set; a lease already dropped stays dropped. */
  renewStream(key: string, id: string, leaseMs: number): Promise<void>;
  releaseStream(key: string, id: string): Promise<void>;
}

// Stream leases: one sorted set per user, members are stream ids scored by expiry (ms, Redis server clock, so API
// clocks may disagree). Expired members are dropped first, so a crashed API stops holding slots leaseMs after its
// last renewal. KEYS[1] = the user's set; ARGV = stream id, lease ms, max.
const OPEN_STREAM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseMs, max = tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= max then return 0 end
redis.call('ZADD', KEYS[1], now + leaseMs, ARGV[1])
redis.call('PEXPIRE', KEYS[1], leaseMs * 2)
return 1
`;
const RENEW_STREAM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseMs = tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], 'XX', now + leaseMs, ARGV[1])
redis.call('PEXPIRE', KEYS[1], leaseMs * 2)
return 1
`;

/**
 * `redis` should be a connection of its own that fails fast (no offline queue, a command timeout): a limiter that
 * cannot reach Redis lets the request through (fail open) rather than hold it or answer 500.
 */
export function redisLimitStore(redis: Redis): LimitStore {
  redis.defineCommand('orchOpenStream', { numberOfKeys: 1, lua: OPEN_STREAM });
  redis.defineCommand('orchRenewStream', { numberOfKeys: 1, lua: RENEW_STREAM });
  const scripts = redis as unknown as {
    orchOpenStream(key: string, id: string, leaseMs: number, max: number): Promise<number>;
    orchRenewStream(key: string, id: string, leaseMs: number): Promise<number>;
  };
  return {
    rateLimiter: (o) => new RateLimiterRedis({ storeClient: redis, keyPrefix: o.keyPrefix, points: o.points, duration: o.durationSeconds, rejectIfRedisNotReady: true }),
    openStream: async (key, id, leaseMs, max) => (await scripts.orchOpenStream(key, id, leaseMs, max)) === 1,
    async renewStream(key, id, leaseMs) {
      await scripts.orchRenewStream(key, id, leaseMs);
    },
    async releaseStream(key, id) {
      await redis.zrem(key, id);
    },
  };
}

export function memoryLimitStore(opts: { now?: () => number } = {}): LimitStore {
  const leases = createLeaseSets(opts.now);
  return {
    rateLimiter: (o) => new RateLimiterMemory({ keyPrefix: o.keyPrefix, points: o.points, duration: o.durationSeconds }),
    async openStream(key, id, leaseMs, max) {
      const t = leases.now();
      const set = leases.live(key, t);
      const open = set.size < max;
      if (open) set.set(id, t + leaseMs);
      leases.tidy(key);
      return open;
    },
    async renewStream(key, id, leaseMs) {
      const set = leases.peek(key);
      if (set?.has(id)) set.set(id, leases.now() + leaseMs);
    },
    async releaseStream(key, id) {
      leases.remove(key, id);
    },
  };
}

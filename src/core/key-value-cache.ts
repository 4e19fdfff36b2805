import type { Redis } from 'ioredis';

/**
 * Small string values that expire, and counters that do not: what the registry and health caches keep. Redis shares
 * them between processes; the in-process one serves a single process (`dev` without REDIS_URL).
 */
export interface KeyValueCache {
  get(key: string): Promise<string | undefined>;
  /** Stores the value for ttlSeconds, replacing any earlier value and its expiry. */
  set(key: string, value: string, ttlSeconds: number): Promise<void>;
  /** Adds one to a counter (absent counts as 0) and returns the new value; a counter keeps any expiry it had. */
  incr(key: string): Promise<number>;
}

export function redisKeyValueCache(redis: Redis): KeyValueCache {
  return {
    async get(key) {
      return (await redis.get(key)) ?? undefined;
    },
    async set(key, value, ttlSeconds) {
      await redis.set(key, value, 'EX', ttlSeconds);
    },
    incr: (key) => redis.incr(key),
  };
}

/** How often expired entries that nobody reads again are dropped: Redis frees them on its own, this map must too. */
const SWEEP_EVERY_MS = 60_000;

export function memoryKeyValueCache(opts: { now?: () => number } = {}): KeyValueCache {
  const now = opts.now ?? (() => performance.now());
  const entries = new Map<string, { value: string; expiresAt: number }>();
  let nextSweep = now() + SWEEP_EVERY_MS;

  const live = (key: string, t: number) => {
    const e = entries.get(key);
    if (e && e.expiresAt <= t) {
      entries.delete(key);
      return undefined;
    }
    return e;
  };
  const sweep = (t: number) => {
    if (t < nextSweep) return;
    nextSweep = t + SWEEP_EVERY_MS;
    for (const [k, e] of entries) if (e.expiresAt <= t) entries.delete(k);
  };

  return {
    async get(key) {
      return live(key, now())?.value;
    },
    async set(key, value, ttlSeconds) {
      const t = now();
      sweep(t);
      entries.set(key, { value, expiresAt: t + ttlSeconds * 1000 });
    },
    async incr(key) {
      const t = now();
      const e = live(key, t);
      const current = e ? Number(e.value) : 0;
      // As Redis answers INCR on a value that is not an integer.
      if (!Number.isSafeInteger(current)) throw new Error('ERR value is not an integer or out of range');
      entries.set(key, { value: String(current + 1), expiresAt: e?.expiresAt ?? Infinity });
      return current + 1;
    },
  };
}

import type { Redis } from 'ioredis';

export interface CachedResult {
  content: Buffer;
  size: number;
  sha256: string;
  mediaType: string;
}

/** The cache of inline results in front of Postgres; every use of it is best effort (see results.ts). */
export interface ResultCache {
  read(key: string): Promise<CachedResult | undefined>;
  /** Replaces the entry as a whole, for ttlSeconds. */
  write(key: string, result: CachedResult, ttlSeconds: number): Promise<void>;
  remove(key: string): Promise<void>;
}

/** One hash per result, written in one MULTI so a reader never sees half an entry. */
export function redisResultCache(redis: Redis): ResultCache {
  return {
    async read(key) {
      const h = await redis.hgetallBuffer(key);
      if (!h?.content || !h.sha256 || !h.size || !h.media_type) return undefined;
      return { content: h.content, size: Number(h.size.toString()), sha256: h.sha256.toString(), mediaType: h.media_type.toString() };
    },
    async write(key, r, ttlSeconds) {
      const replies = await redis
        .multi()
        .del(key)
        .hset(key, { content: r.content, size: String(r.size), sha256: r.sha256, media_type: r.mediaType })
        .expire(key, ttlSeconds)
        .exec();
      const failed = replies?.find(([err]) => err);
      if (failed) throw failed[0];
    },
    async remove(key) {
      await redis.del(key);
    },
  };
}

/**
 * In one process the cache holds at most `maxBytes` of content (default 64 MiB): results are up to
 * RESULT_INLINE_MAX_BYTES each and would otherwise pile up for their whole TTL. The oldest-used entries go first;
 * a miss only means a read from Postgres.
 */
export function memoryResultCache(opts: { maxBytes?: number; now?: () => number } = {}): ResultCache {
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  const now = opts.now ?? (() => performance.now());
  // Map order is use order: a read moves its entry to the end.
  const entries = new Map<string, { result: CachedResult; expiresAt: number }>();
  let bytes = 0;

  const drop = (key: string) => {
    const e = entries.get(key);
    if (!e) return;
    entries.delete(key);
    bytes -= e.result.content.length;
  };

  return {
    async read(key) {
      const e = entries.get(key);
      if (!e) return undefined;
      if (e.expiresAt <= now()) {
        drop(key);
        return undefined;
      }
      entries.delete(key);
      entries.set(key, e);
      return e.result;
    },
    async write(key, r, ttlSeconds) {
      drop(key);
      if (r.content.length > maxBytes) return;
      const t = now();
      for (const k of entries.keys()) {
        if (bytes + r.content.length <= maxBytes) break;
        drop(k);
      }
      // A copy: the caller's buffer may be reused; Redis never aliases it either.
      entries.set(key, { result: { ...r, content: Buffer.from(r.content) }, expiresAt: t + ttlSeconds * 1000 });
      bytes += r.content.length;
    },
    async remove(key) {
      drop(key);
    },
  };
}

import { once } from 'node:events';
import { Redis } from 'ioredis';
import type { Config } from './config.ts';
import { memoryKeyValueCache, redisKeyValueCache, type KeyValueCache } from './core/key-value-cache.ts';
import { memoryLimitStore, redisLimitStore, type LimitStore } from './core/limit-store.ts';
import { createMemoryPubSub, type MessagePublisher, type MessageSubscriber } from './core/pub-sub.ts';
import { memoryResultCache, redisResultCache, type ResultCache } from './core/result-cache.ts';
import { memorySlotStore, redisSlotStore, type SlotStore } from './core/slot-store.ts';
import type { Logger } from './lib/logger.ts';

/** Everything the services keep outside Postgres: in Redis when REDIS_URL is set, else in this process's memory. */
export interface Stores {
  /** 'redis' shares state with every process on the same Redis; 'in process' holds it for this process alone. */
  mode: 'redis' | 'in process';
  cache: KeyValueCache;
  resultCache: ResultCache;
  slots: SlotStore;
  publisher: MessagePublisher;
  subscriber: MessageSubscriber;
  limits: LimitStore;
  /** The Redis connections, for tests and tools that look inside; absent in process. */
  redis?: Redis;
  limitsRedis?: Redis;
  /** Resolves once the stores can take requests (bounded wait). */
  ready(): Promise<void>;
  /** The readiness check: throws when the store is unreachable; says 'in process' when there is nothing to reach. */
  check(): Promise<'in process' | void>;
  close(): void;
}

export function createStores(config: Config, log: Logger): Stores {
  return config.redisUrl ? redisStores(config.redisUrl, config.redisPrefix, log) : inProcessStores();
}

function redisStores(url: string, prefix: string, log: Logger): Stores {
  const redis = new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 3 });
  const subscriber = redis.duplicate();
  redis.on('error', (err) => log.warn({ err: err.message }, 'redis connection error'));
  subscriber.on('error', (err) => log.warn({ err: err.message }, 'redis subscriber error'));
  // Limits get a connection that fails fast when Redis is away (no offline queue, a command timeout): they then let
  // requests through instead of holding them.
  const limitsRedis = redis.duplicate({ enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2000 });
  limitsRedis.on('error', (err) => log.warn({ err: err.message }, 'redis limits connection error'));
  // Without an offline queue, a request arriving before the connection is up would pass unlimited: wait for it, briefly.
  const limitsReady = once(limitsRedis, 'ready', { signal: AbortSignal.timeout(5000) }).then(
    () => undefined,
    () => log.warn('redis limits connection not ready; limits let requests through until it is'),
  );
  return {
    mode: 'redis',
    cache: redisKeyValueCache(redis),
    resultCache: redisResultCache(redis),
    slots: redisSlotStore(redis, prefix),
    publisher: redis,
    subscriber,
    limits: redisLimitStore(limitsRedis),
    redis,
    limitsRedis,
    ready: () => limitsReady,
    async check() {
      await redis.ping();
    },
    close() {
      subscriber.disconnect();
      limitsRedis.disconnect();
      redis.disconnect();
    },
  };
}

/**
 * One process, nothing to install: the same semantics as the Redis stores, for this process only. Another process
 * on the same database would not see these slots, limits or live events, which is why `api` and `worker` require
 * REDIS_URL.
 */
function inProcessStores(): Stores {
  const bus = createMemoryPubSub();
  const subscriber = bus.subscriber();
  return {
    mode: 'in process',
    cache: memoryKeyValueCache(),
    resultCache: memoryResultCache(),
    slots: memorySlotStore(),
    publisher: bus.publisher,
    subscriber,
    limits: memoryLimitStore(),
    ready: async () => undefined,
    check: async () => 'in process',
    close() {
      subscriber.disconnect();
    },
  };
}

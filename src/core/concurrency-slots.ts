import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

// Leases live in sorted sets scored by expiry (ms, Redis server clock, so worker clocks may disagree).
// Every script first drops expired leases: a worker that crashed stops counting leaseMs after its last renew.
// KEYS[1] = global set, KEYS[2] = per-server set (optional).

const ACQUIRE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local holder, leaseMs, maxGlobal, maxServer = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
for i = 1, #KEYS do redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now) end
if not redis.call('ZSCORE', KEYS[1], holder) and redis.call('ZCARD', KEYS[1]) >= maxGlobal then return 0 end
if #KEYS > 1 and maxServer >= 0 and not redis.call('ZSCORE', KEYS[2], holder)
  and redis.call('ZCARD', KEYS[2]) >= maxServer then return 0 end
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], now + leaseMs, holder)
  redis.call('PEXPIRE', KEYS[i], leaseMs * 2)
end
return 1
`;

const RENEW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local leaseMs = tonumber(ARGV[2])
local held = 1
for i = 1, #KEYS do
  -- An expired lease is lost even if no one has claimed it yet: renewing it could exceed the cap unseen.
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  if redis.call('ZADD', KEYS[i], 'XX', 'CH', now + leaseMs, ARGV[1]) == 0 and not redis.call('ZSCORE', KEYS[i], ARGV[1]) then
    held = 0
  else
    redis.call('PEXPIRE', KEYS[i], leaseMs * 2)
  end
end
return held
`;

const COUNT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZCARD', KEYS[1])
`;

function sha1(text: string): string {
  return createHash('sha1').update(text).digest('hex');
}

/** EVALSHA, loading the script on NOSCRIPT; leaves the shared client's command table alone (no defineCommand). */
function script(redis: Redis, lua: string) {
  const sha = sha1(lua);
  return async (keys: string[], args: (string | number)[]): Promise<number> => {
    try {
      return (await redis.evalsha(sha, keys.length, ...keys, ...args)) as number;
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return (await redis.eval(lua, keys.length, ...keys, ...args)) as number;
    }
  };
}

export interface SlotScope {
  serverId: string;
  /** Per-server cap; absent means only the global cap applies. */
  serverMax?: number;
}

/**
 * A counting semaphore shared by every worker: at most `maxGlobal` holders at once, and at most
 * `scope.serverMax` per server. Holders are ids that survive retries (the task id), so a retried
 * dispatch re-enters its own slot instead of taking a second one.
 */
export function createConcurrencySlots(deps: { redis: Redis; maxGlobal: number; leaseMs: number; keyPrefix?: string }) {
  const { redis, maxGlobal, leaseMs } = deps;
  const prefix = deps.keyPrefix ?? '';
  // One hash tag keeps the global and per-server sets in one cluster slot, as a multi-key script needs.
  const globalKey = `${prefix}{slots}:global`;
  const serverKey = (serverId: string) => `${prefix}{slots}:server:${serverId}`;
  const keysFor = (scope?: SlotScope) => (scope ? [globalKey, serverKey(scope.serverId)] : [globalKey]);
  const acquire = script(redis, ACQUIRE);
  const renew = script(redis, RENEW);
  const count = script(redis, COUNT);
  const renewLease = async (holder: string, scope?: SlotScope) => (await renew(keysFor(scope), [holder, leaseMs])) === 1;

  return {
    async tryAcquire(holder: string, scope?: SlotScope): Promise<boolean> {
      const serverMax = scope?.serverMax ?? -1;
      return (await acquire(keysFor(scope), [holder, leaseMs, maxGlobal, serverMax])) === 1;
    },

    /** Extends the lease. False when it had already expired and been dropped: the slot is no longer held. */
    renew: renewLease,

    /** Pass the scope used to acquire, so the per-server slot is freed too. */
    async release(holder: string, scope?: SlotScope): Promise<void> {
      const multi = redis.multi();
      for (const key of keysFor(scope)) multi.zrem(key, holder);
      await multi.exec();
    },

    async inFlight(serverId?: string): Promise<number> {
      return count([serverId === undefined ? globalKey : serverKey(serverId)], []);
    },

    leaseMs,

    /**
     * Renews the lease every `everyMs` while work runs under it. The returned signal aborts when the lease is lost
     * (another holder may have the slot) or when renewals have failed for so long that it may have expired: the work
     * must stop, or the cap would be exceeded unseen. A failed renewal alone is not a loss while the last good one
     * is younger than the lease.
     */
    keepHeld(holder: string, scope: SlotScope | undefined, opts: { everyMs: number; onRenewError?: (err: unknown) => void }) {
      const lost = new AbortController();
      let renewedAt = performance.now();
      let busy = false;
      const timer = setInterval(() => {
        if (lost.signal.aborted) return;
        // A renewal that hangs (Redis unreachable) counts as failing: one interval of margin, as the next try would
        // come too late.
        if (performance.now() - renewedAt + opts.everyMs >= leaseMs) {
          lost.abort(new SlotLostError('the dispatch slot lease could not be renewed in time'));
          return;
        }
        if (busy) return;
        busy = true;
        const askedAt = performance.now();
        renewLease(holder, scope)
          .then((held) => {
            if (held) renewedAt = askedAt;
            else lost.abort(new SlotLostError('the dispatch slot lease was lost'));
          })
          .catch((err) => opts.onRenewError?.(err))
          .finally(() => {
            busy = false;
          });
      }, opts.everyMs);
      return {
        signal: lost.signal,
        stop: () => clearInterval(timer),
      };
    },
  };
}

/** The slot a holder worked under is no longer (surely) its own. */
export class SlotLostError extends Error {
  override name = 'SlotLostError';
}

export type ConcurrencySlots = ReturnType<typeof createConcurrencySlots>;

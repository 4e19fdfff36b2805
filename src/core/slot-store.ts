import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { createLeaseSets } from './lease-sets.ts';

export interface SlotScope {
  serverId: string;
  /** Per-server cap; absent means only the global cap applies. */
  serverMax?: number;
}

/**
 * Where dispatch slot leases live: Redis for every worker together, or this process's memory. Each operation first
 * drops leases that have ended, so a holder that stopped renewing (a crashed worker) stops counting leaseMs after its
 * last renewal.
 */
export interface SlotStore {
  /** Takes (or re-takes) the holder's global and per-server slot, unless a cap is reached; all or nothing. */
  acquire(holder: string, scope: SlotScope | undefined, leaseMs: number, maxGlobal: number): Promise<boolean>;
  /** Extends the lease in each set; false when the holder is missing from any of them (its lease ended). */
  renew(holder: string, scope: SlotScope | undefined, leaseMs: number): Promise<boolean>;
  release(holder: string, scope: SlotScope | undefined): Promise<void>;
  /** Live leases, globally or of one server. */
  count(serverId?: string): Promise<number>;
}

// Leases live in sorted sets scored by expiry (ms, Redis server clock, so worker clocks may disagree).
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

export function redisSlotStore(redis: Redis, keyPrefix = ''): SlotStore {
  // One hash tag keeps the global and per-server sets in one cluster slot, as a multi-key script needs.
  const globalKey = `${keyPrefix}{slots}:global`;
  const serverKey = (serverId: string) => `${keyPrefix}{slots}:server:${serverId}`;
  const keysFor = (scope?: SlotScope) => (scope ? [globalKey, serverKey(scope.serverId)] : [globalKey]);
  const acquire = script(redis, ACQUIRE);
  const renew = script(redis, RENEW);
  const count = script(redis, COUNT);
  return {
    async acquire(holder, scope, leaseMs, maxGlobal) {
      return (await acquire(keysFor(scope), [holder, leaseMs, maxGlobal, scope?.serverMax ?? -1])) === 1;
    },
    async renew(holder, scope, leaseMs) {
      return (await renew(keysFor(scope), [holder, leaseMs])) === 1;
    },
    async release(holder, scope) {
      const multi = redis.multi();
      for (const key of keysFor(scope)) multi.zrem(key, holder);
      await multi.exec();
    },
    count: (serverId) => count([serverId === undefined ? globalKey : serverKey(serverId)], []),
  };
}

/** The same operations on this process's memory; each runs whole between two awaits, as a script runs in Redis. */
export function memorySlotStore(opts: { now?: () => number } = {}): SlotStore {
  const leases = createLeaseSets(opts.now);
  const GLOBAL = 'global';
  const serverKey = (serverId: string) => `server:${serverId}`;
  const keysFor = (scope?: SlotScope) => (scope ? [GLOBAL, serverKey(scope.serverId)] : [GLOBAL]);

  return {
    async acquire(holder, scope, leaseMs, maxGlobal) {
      const t = leases.now();
      const global = leases.live(GLOBAL, t);
      const server = scope ? leases.live(serverKey(scope.serverId), t) : undefined;
      const full =
        (!global.has(holder) && global.size >= maxGlobal) ||
        (server !== undefined && (scope?.serverMax ?? -1) >= 0 && !server.has(holder) && server.size >= scope!.serverMax!);
      if (!full) {
        global.set(holder, t + leaseMs);
        server?.set(holder, t + leaseMs);
      }
      for (const key of keysFor(scope)) leases.tidy(key);
      return !full;
    },
    async renew(holder, scope, leaseMs) {
      const t = leases.now();
      let held = true;
      for (const key of keysFor(scope)) {
        // An expired lease is lost even if no one has claimed it yet: renewing it could exceed the cap unseen.
        const set = leases.live(key, t);
        if (set.has(holder)) set.set(holder, t + leaseMs);
        else held = false;
        leases.tidy(key);
      }
      return held;
    },
    async release(holder, scope) {
      for (const key of keysFor(scope)) leases.remove(key, holder);
    },
    async count(serverId) {
      const key = serverId === undefined ? GLOBAL : serverKey(serverId);
      const n = leases.live(key, leases.now()).size;
      leases.tidy(key);
      return n;
    },
  };
}

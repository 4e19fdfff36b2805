import type { KeyValueCache } from './key-value-cache.ts';
import type { HealthSignal } from './routing.ts';

// Last probe result per server and target kind: what routing scores by. Kept in Redis so every worker shares it
// (in this process's memory when it runs alone).

interface Stored {
  healthy: boolean;
  latencyMs?: number;
  at: number;
}

export function createHealthStore(deps: { cache: KeyValueCache; keyPrefix?: string; ttlSeconds?: number; now?: () => number }) {
  const prefix = deps.keyPrefix ?? '';
  const ttl = deps.ttlSeconds ?? 600;
  const now = deps.now ?? Date.now;
  const key = (serverId: string, kind: string, scope?: string) => `${prefix}health:${serverId}:${kind}${scope ? `:${scope}` : ''}`;

  return {
    async record(serverId: string, kind: 'oracle' | 'space', result: { healthy: boolean; latencyMs?: number }, scope?: string) {
      const value: Stored = { healthy: result.healthy, latencyMs: result.latencyMs, at: now() };
      await deps.cache.set(key(serverId, kind, scope), JSON.stringify(value), ttl);
    },
    /**
     * A call that just succeeded says the target is up as surely as a probe: the record is renewed, keeping the
     * probe's latency (a tool call's duration is the tool's work, not the server's responsiveness). With no record
     * yet there is no latency to keep, and the first probe makes one.
     */
    async confirmHealthy(serverId: string, kind: 'oracle' | 'space', scope?: string): Promise<void> {
      const raw = await deps.cache.get(key(serverId, kind, scope));
      if (!raw) return;
      const s = JSON.parse(raw) as Stored;
      const value: Stored = { healthy: true, latencyMs: s.latencyMs, at: now() };
      await deps.cache.set(key(serverId, kind, scope), JSON.stringify(value), ttl);
    },
    async read(serverId: string, kind: 'oracle' | 'space', scope?: string): Promise<HealthSignal | undefined> {
      const raw = await deps.cache.get(key(serverId, kind, scope));
      if (!raw) return undefined;
      const s = JSON.parse(raw) as Stored;
      return { healthy: s.healthy, latencyMs: s.latencyMs, ageMs: now() - s.at };
    },
  };
}

export type HealthStore = ReturnType<typeof createHealthStore>;

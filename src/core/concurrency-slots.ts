import type { SlotScope, SlotStore } from './slot-store.ts';

export type { SlotScope } from './slot-store.ts';

/**
 * A counting semaphore shared by every worker: at most `maxGlobal` holders at once, and at most
 * `scope.serverMax` per server. Holders are ids that survive retries (the task id), so a retried
 * dispatch re-enters its own slot instead of taking a second one.
 */
export function createConcurrencySlots(deps: { store: SlotStore; maxGlobal: number; leaseMs: number }) {
  const { store, maxGlobal, leaseMs } = deps;
  const renewLease = (holder: string, scope?: SlotScope) => store.renew(holder, scope, leaseMs);

  return {
    tryAcquire(holder: string, scope?: SlotScope): Promise<boolean> {
      return store.acquire(holder, scope, leaseMs, maxGlobal);
    },

    /** Extends the lease. False when it had already expired and been dropped: the slot is no longer held. */
    renew: renewLease,

    /** Pass the scope used to acquire, so the per-server slot is freed too. */
    release(holder: string, scope?: SlotScope): Promise<void> {
      return store.release(holder, scope);
    },

    inFlight(serverId?: string): Promise<number> {
      return store.count(serverId);
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

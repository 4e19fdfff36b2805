/**
 * The in-process counterpart of the sorted sets of leases kept in Redis (dispatch slots, event-stream slots): per
 * key, members and the time their lease ends. Times come from one monotonic clock, as the Redis server's clock is
 * the one clock there.
 */
export function createLeaseSets(now: () => number = () => performance.now()) {
  const sets = new Map<string, Map<string, number>>();
  /** An empty set is forgotten, as Redis deletes an empty key. */
  const tidy = (key: string) => {
    if (sets.get(key)?.size === 0) sets.delete(key);
  };

  return {
    now,
    /** The set with every lease that ended at or before `t` dropped, as ZREMRANGEBYSCORE key -inf t does. */
    live(key: string, t: number): Map<string, number> {
      let set = sets.get(key);
      if (!set) {
        set = new Map();
        sets.set(key, set);
      }
      for (const [member, until] of set) if (until <= t) set.delete(member);
      return set;
    },
    /** The set as it is, expired leases included (for renewals that, like ZADD XX, do not prune). */
    peek(key: string): Map<string, number> | undefined {
      return sets.get(key);
    },
    remove(key: string, member: string): void {
      sets.get(key)?.delete(member);
      tidy(key);
    },
    tidy,
  };
}

export type LeaseSets = ReturnType<typeof createLeaseSets>;

/** Thrown (to the error hook) when a best-effort step did not settle in time; the step itself may still finish. */
export class BestEffortTimeoutError extends Error {
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms`);
    this.name = 'BestEffortTimeout';
  }
}

/**
 * Runs a step whose failure must not fail its caller (a cache write, a pub/sub publish): resolves with the value, or
 * with undefined after `onError` heard why. A client that queues commands while its server is away would otherwise
 * hold the caller for as long as it keeps retrying, so the wait is bounded by `timeoutMs`.
 */
export async function bestEffort<T>(what: string, step: () => Promise<T>, opts: { timeoutMs: number; onError: (err: unknown) => void }): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const running = (async () => step())();
  // The step may reject after the timeout won; that late rejection is already reported as the timeout.
  running.catch(() => undefined);
  try {
    return await Promise.race([
      running,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new BestEffortTimeoutError(what, opts.timeoutMs)), opts.timeoutMs);
        timer.unref();
      }),
    ]);
  } catch (err) {
    opts.onError(err);
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

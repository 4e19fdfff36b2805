import type { Logger } from '../lib/logger.ts';
import type { TaskService } from './tasks.ts';

/**
 * Starts, every `intervalMs`, the workflows of tasks that were accepted but never started (the API died between
 * storing a task and starting it, or Temporal was away). Runs in every API and worker process: the task service
 * locks each task while starting it, so replicas share the work instead of repeating it.
 */
export function createTaskReconciler(deps: {
  tasks: Pick<TaskService, 'startUnstarted'>;
  log: Logger;
  intervalMs: number;
  /** A task younger than this is left to the submission that is starting it. */
  graceMs: number;
  /** Tasks started per round at most; the next round takes the rest. */
  batchSize?: number;
  onStarted?: (count: number) => void;
}) {
  const { log } = deps;
  const batchSize = deps.batchSize ?? 100;
  let timer: NodeJS.Timeout | undefined;
  let round: Promise<void> | undefined;
  let stopped = false;

  async function runOnce(): Promise<{ found: number; started: number; failed: number }> {
    const r = await deps.tasks.startUnstarted({ olderThanMs: deps.graceMs, limit: batchSize });
    if (r.started > 0) {
      deps.onStarted?.(r.started);
      log.info(r, 'started the workflows of tasks left unstarted');
    }
    if (r.failed > 0) log.warn(r, 'some unstarted tasks could not be started; trying again next round');
    return r;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      round = runOnce()
        .then(() => undefined)
        .catch((err: unknown) => log.warn({ err: (err as Error).message }, 'task reconciliation round failed'))
        .finally(() => {
          round = undefined;
          schedule();
        });
    }, deps.intervalMs);
    // A process that is otherwise done may exit: the reconciler never holds it open.
    timer.unref();
  }

  return {
    runOnce,
    start(): void {
      stopped = false;
      schedule();
    },
    /** Stops scheduling and waits for a round under way. */
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await round;
    },
  };
}

export type TaskReconciler = ReturnType<typeof createTaskReconciler>;

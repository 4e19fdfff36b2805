import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker, bundleWorkflowCode, type WorkflowBundleOption, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import type { Activities } from '../../activities/index.ts';

export const WORKFLOWS_PATH = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../workflows/index.ts');

/** Bundles the workflow code once; tests and the bench share one bundle across workers. */
export async function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: quietBundlerLogger });
}

const noop = () => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

export async function createTaskWorker(opts: {
  connection: NativeConnection;
  namespace: string;
  taskQueue: string;
  activities: Activities;
  /** Prebuilt code (tests share one per run; production ships `orchestrator bundle` output); else bundled at start. */
  workflowBundle?: WorkflowBundleOption;
  maxConcurrentActivities?: number;
  /**
   * Workflows kept in memory between activations. Tasks parked for minutes (awaiting consent, waiting for a slot) need
   * not stay cached: one evicted is replayed from its short history when it wakes. Bounds worker memory.
   */
  maxCachedWorkflows?: number;
}): Promise<Worker> {
  return Worker.create({
    connection: opts.connection,
    namespace: opts.namespace,
    taskQueue: opts.taskQueue,
    activities: opts.activities,
    ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH, bundlerOptions: { logger: quietBundlerLogger } as never }),
    maxConcurrentActivityTaskExecutions: opts.maxConcurrentActivities ?? 200,
    // Dispatches are long and mostly idle on I/O; let the worker hold many at once (slot waits hold none).
    maxConcurrentLocalActivityExecutions: 100,
    ...(opts.maxCachedWorkflows !== undefined ? { maxCachedWorkflows: opts.maxCachedWorkflows } : {}),
  });
}

import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { defineSearchAttributeKey } from '@temporalio/common';
import type {
  TaskStatus,
  TargetKind,
  McpTransport,
  RouteTarget,
  RoutePlan,
  AttemptOutcome,
  AttemptRecord,
  ConsentState,
  TaskError,
  TaskState,
  ConsentDecision,
  ResultRef,
} from '../src/core/task-model.ts';

type KeywordKey = ReturnType<typeof defineSearchAttributeKey<'KEYWORD'>>;

// Public names: running executions and operators use them. Never rename.
export const TASK_WORKFLOW_TYPE = 'taskWorkflow';

// The domain model lives in src/core; workflow code takes its types from here.
export type {
  TaskStatus,
  TargetKind,
  McpTransport,
  RouteTarget,
  RoutePlan,
  AttemptOutcome,
  AttemptRecord,
  ConsentState,
  TaskError,
  TaskState,
  ConsentDecision,
  ResultRef,
};

/** Timings come with the input so every deadline is configurable (tests use short ones). */
export interface TaskPolicy {
  consentTimeoutMs: number;
  retryInitialMs: number;
  retryMaxMs: number;
  probeTimeoutMs: number;
  /** How long a silent dispatch may go before Temporal declares its worker lost and retries elsewhere. */
  heartbeatTimeoutMs: number;
  /** How long a probe may wait for a sleeping or building Space to come up. */
  spaceStartTimeoutMs: number;
}

/** Ids and routing facts only: the tool arguments stay in Postgres (they may be megabytes). */
export interface TaskWorkflowInput {
  taskId: string;
  projectId: string;
  tool: string;
  heavy: boolean;
  consentToOracle: boolean;
  requestId?: string;
  policy: TaskPolicy;
}

export const stateQuery = defineQuery<TaskState>('state');
export const consentSignal = defineSignal<[ConsentDecision]>('consent');
export const decideConsentUpdate = defineUpdate<TaskState, [ConsentDecision]>('decideConsent');

export const searchAttributes = {
  taskStatus: { name: 'TaskStatus', type: 'KEYWORD' } as KeywordKey,
  projectId: { name: 'ProjectId', type: 'KEYWORD' } as KeywordKey,
  tool: { name: 'Tool', type: 'KEYWORD' } as KeywordKey,
  targetKind: { name: 'TargetKind', type: 'KEYWORD' } as KeywordKey,
} as const;

/** For registering them on a namespace: name -> indexed value type. */
export const SEARCH_ATTRIBUTE_TYPES: Record<string, 'KEYWORD'> = Object.fromEntries(
  Object.values(searchAttributes).map((k) => [k.name, 'KEYWORD' as const]),
);

/**
 * The dispatch lost its concurrency slot (lease expired or renewals failed) and stopped the call: the workflow waits
 * for a slot again; it is not a failed attempt.
 */
export const SLOT_LOST = 'SlotLost';

/** Error types the dispatch and probe activities raise; the workflow and retry policies key on them. */
export const NON_RETRYABLE_DISPATCH_ERRORS = ['ToolNotFound', 'InvalidArguments', 'ToolError', 'TargetRejected', 'TaskNotFound', 'ResultTooLarge', SLOT_LOST];

/** The submitter's provider token is missing or may not go to that server: the user can fix it, a retry cannot. */
export const PROVIDER_TOKEN_ERRORS = ['ProviderTokenMissing', 'ProviderTokenRefused'];

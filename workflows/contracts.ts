import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { defineSearchAttributeKey } from '@temporalio/common';

type KeywordKey = ReturnType<typeof defineSearchAttributeKey<'KEYWORD'>>;

// Public names: running executions and operators use them. Never rename.
export const TASK_WORKFLOW_TYPE = 'taskWorkflow';

export const TASK_STATUSES = ['queued', 'routing', 'running', 'awaiting_consent', 'succeeded', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['succeeded', 'failed', 'canceled'];

export type TargetKind = 'space' | 'oracle';
export type McpTransport = 'auto' | 'streamable-http' | 'sse';

/** One place a task may run. Carries no secrets: it is recorded in workflow history. */
export interface RouteTarget {
  kind: TargetKind;
  serverId: string;
  serverName: string;
  /** The server's name for the tool (a task may ask for a capability the tool declares). */
  tool?: string;
  url: string;
  transport: McpTransport;
  healthPath?: string;
  /** Work meant for the user's Space that would run on platform infrastructure. */
  needsConsent: boolean;
  timeoutMs: number;
  /** A Space named by id: its Hub runtime stage is read before it is touched. */
  spaceId?: string;
  maxConcurrency?: number;
  /**
   * The oracle was seen healthy moments before planning (younger than PROBE_FRESH): the workflow skips the probe
   * activity when it reaches this target straight away. Decided in planRoute, so replay reads it from history.
   */
  fresh?: boolean;
}

export interface RoutePlan {
  targets: RouteTarget[];
  /** Why the plan is empty or shorter than a person might expect. */
  note?: string;
}

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

export type AttemptOutcome = 'unhealthy' | 'failed' | 'succeeded' | 'consent_denied' | 'consent_expired' | 'canceled';

export interface AttemptRecord {
  kind: TargetKind;
  server: string;
  outcome: AttemptOutcome;
  /** Activity attempts spent on this target (probe or dispatch). */
  tries?: number;
  reason?: string;
  at: string;
}

export type ConsentState = 'not_needed' | 'given_at_submission' | 'pending' | 'granted' | 'denied' | 'expired';

export interface TaskError {
  code: string;
  message: string;
}

export interface TaskState {
  status: TaskStatus;
  target?: { kind: TargetKind; server: string };
  attempts: AttemptRecord[];
  consent: ConsentState;
  /** When awaiting consent: the moment the wait ends on its own (ISO 8601). */
  consentDeadline?: string;
  error?: TaskError;
}

export interface ConsentDecision {
  grant: boolean;
  by?: string;
}

/** Small summary of a stored result; the bytes never enter history. `staged`: waiting for the blob store. */
export interface ResultRef {
  storage: 'inline' | 'staged' | 'pointer';
  size: number;
  sha256: string;
  mediaType: string;
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

// The task domain model: statuses, where a task may run, what it did, what it produced. Shared by the services, the
// API, the activities and (as types only) the workflow, so nothing outside workflows/ loads the workflow SDK for it.

export const TASK_STATUSES = ['queued', 'routing', 'running', 'awaiting_consent', 'succeeded', 'failed', 'canceled'] as const;
export type TaskStatus = (typeof TASK_STATUSES)[number];
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['succeeded', 'failed', 'canceled'];

export type TargetKind = 'space' | 'oracle';
export type McpTransport = 'auto' | 'streamable-http' | 'sse';

/** Providers a registry server may act as the user with (see src/core/acting-as.ts). */
export const ACTS_AS_PROVIDERS = ['github'] as const;
export type ActsAs = (typeof ACTS_AS_PROVIDERS)[number];

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
   * The oracle acts as the submitting user with this provider's token, looked up when the call is made (the token
   * itself is never here). Only on oracle targets: a user's Space gets its own token.
   */
  actsAs?: ActsAs;
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
  /** For ProviderTokenMissing / ProviderTokenRefused: whose token it was about. */
  provider?: string;
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

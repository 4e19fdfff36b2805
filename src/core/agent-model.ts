// The agent domain model: a definition (a DAG of steps), a run, and the states of a run's steps. Shared by the
// services, the API, the activities and (as types only) the run workflow.

/** A value `{"$ref": "input.x"}` inside a step's arguments or forEach: replaced by what the path names. */
export interface AgentRef {
  $ref: string;
}

export interface AgentStep {
  id: string;
  /** The step's kind: `tool` (the default) runs an MCP tool as a task; other kinds are registered step kinds. */
  kind?: string;
  /** The tool a `tool` step runs. */
  tool?: string;
  arguments: Record<string, unknown>;
  dependsOn?: string[];
  heavy?: boolean;
  consentToOracle?: boolean;
  /** Fans the step out: one item per element of the array the reference names; `item` refers to the element. */
  forEach?: AgentRef;
}

export interface AgentDefinition {
  name: string;
  description?: string;
  inputSchema?: Record<string, unknown>;
  steps: AgentStep[];
}

export const AGENT_RUN_STATUSES = ['queued', 'running', 'awaiting_consent', 'succeeded', 'failed', 'canceled'] as const;
export type AgentRunStatus = (typeof AGENT_RUN_STATUSES)[number];
export const TERMINAL_RUN_STATUSES: readonly AgentRunStatus[] = ['succeeded', 'failed', 'canceled'];

/** `skipped`: never started, because the run failed or was canceled first. */
export type AgentStepStatus = 'pending' | 'running' | 'awaiting_consent' | 'succeeded' | 'failed' | 'canceled' | 'skipped';

export interface AgentRunError {
  code: string;
  message: string;
  /** The step that failed the run. */
  step?: string;
}

/** What the run workflow needs of a step: ids and routing facts, never arguments (they may be large). */
export interface PlannedStep {
  id: string;
  kind: string;
  tool?: string;
  /** Steps this one waits for: dependsOn plus every step its arguments or forEach refer to. */
  needs: string[];
  forEach: boolean;
  heavy: boolean;
  consentToOracle: boolean;
}

export interface RunPlan {
  steps: PlannedStep[];
}

/** A unit the workflow starts: one step, or one item of a forEach step (item -1 for a step without forEach). */
export interface PreparedStep {
  taskId?: string;
  workflowId?: string;
  tool?: string;
  heavy: boolean;
  consentToOracle: boolean;
}

// Step kinds other than `tool`: work a run does itself, in an activity, instead of through an MCP task. A kind is
// registered here by name (createWorld builds the map, so a kind can use any service of the world, such as a
// knowledge graph); a step names it with `kind`. Its output is small JSON kept with the run.

export interface AgentStepKindContext {
  projectId: string;
  runId: string;
  stepId: string;
  /** The step's arguments with every reference resolved. */
  arguments: Record<string, unknown>;
}

export interface AgentStepKind {
  /** What the kind does, for the README and error messages. */
  description: string;
  /** Runs the step; returns its output (JSON, at most MAX_STEP_KIND_OUTPUT_BYTES serialized). */
  run(ctx: AgentStepKindContext): Promise<unknown>;
  /**
   * Checks a definition's arguments when the agent is saved (references still unresolved); throws with a sentence
   * saying what is wrong, which becomes a 422 naming the step.
   */
  validate?(args: Record<string, unknown>): void;
}

export type AgentStepKinds = ReadonlyMap<string, AgentStepKind>;

/** Outputs of step kinds live in a Postgres row next to the run; large outputs belong in a tool's result store. */
export const MAX_STEP_KIND_OUTPUT_BYTES = 256 * 1024;

/**
 * `value`: outputs its own (resolved) arguments. Reshapes outputs, or gathers a fan-out's outputs for a later step
 * (a fan-in), without calling a tool.
 */
export const valueStepKind: AgentStepKind = {
  description: 'outputs its resolved arguments',
  run: async (ctx) => ctx.arguments,
};

export function builtInStepKinds(): Map<string, AgentStepKind> {
  return new Map([['value', valueStepKind]]);
}

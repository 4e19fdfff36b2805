import { z } from 'zod';
import type { AgentStepKind } from './agent-step-kinds.ts';
import { isRef } from './agent-refs.ts';
import { StepInputError } from './agent-runs.ts';
import type { KnowledgeGraph } from './knowledge-graph.ts';
import { entitySchema, kgBatch, relationSchema } from './knowledge-graph-schemas.ts';

// `kg.upsert`: writes what a run learnt into the project's knowledge graph. Its arguments, after references are
// resolved, are `{entities?, relations?}` in the memory server's shapes; the write merges (world.kg.upsert), so a
// step that runs twice (a retried activity) leaves the same graph.

const upsertArguments = z
  .strictObject({
    // A mapped output often has no observations: they default to none rather than failing the run.
    entities: kgBatch(entitySchema.extend({ observations: entitySchema.shape.observations.default([]) })).optional(),
    relations: kgBatch(relationSchema).optional(),
  })
  .refine((a) => a.entities !== undefined || a.relations !== undefined, 'needs entities or relations (or both)');

function describe(issue: z.core.$ZodIssue): string {
  return `${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}`;
}

/** True when the path runs through a reference: what is there is known only when the run resolves it. */
function behindRef(args: unknown, path: PropertyKey[]): boolean {
  let v = args;
  for (const p of path) {
    if (isRef(v)) return true;
    if (v === null || typeof v !== 'object') return false;
    v = (v as Record<PropertyKey, unknown>)[p as string];
  }
  return isRef(v);
}

export function kgUpsertStepKind(deps: { kg: Pick<KnowledgeGraph, 'upsert'> }): AgentStepKind {
  return {
    description: 'merges {entities, relations} into the project knowledge graph',
    validate(args) {
      // Parts given as references are checked when the run resolves them; everything written out must fit now.
      const result = upsertArguments.safeParse(args);
      if (result.success) return;
      const issue = result.error.issues.find((i) => !behindRef(args, i.path));
      if (issue) throw new Error(describe(issue));
    },
    async run(ctx) {
      const result = upsertArguments.safeParse(ctx.arguments);
      if (!result.success) throw new StepInputError(`step "${ctx.stepId}": kg.upsert arguments do not fit: ${describe(result.error.issues[0]!)}`);
      const written = await deps.kg.upsert(ctx.projectId, { entities: result.data.entities ?? [], relations: result.data.relations ?? [] });
      return written;
    },
  };
}

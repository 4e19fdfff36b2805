import type { AgentDefinition, PlannedStep } from './agent-model.ts';
import { collectRefs, parseRef } from './agent-refs.ts';
import { InvalidRequestError } from './errors.ts';

/** A definition that is not a runnable DAG. `step` names the step at fault; clients get it in the problem. */
export class AgentDefinitionError extends InvalidRequestError {
  constructor(code: 'DuplicateStep' | 'UnknownStep' | 'UnknownReference' | 'DependencyCycle' | 'UnknownTool' | 'UnknownStepKind' | 'InvalidStep', step: string, message: string) {
    super(code, `step "${step}": ${message}`, { step });
  }
}

/** Property names an input schema declares at its top level, when it declares them (else any name is fine). */
function declaredInputs(schema: Record<string, unknown> | undefined): Set<string> | undefined {
  const props = schema?.properties;
  return props && typeof props === 'object' && !Array.isArray(props) ? new Set(Object.keys(props)) : undefined;
}

/**
 * Checks a definition is a DAG whose references all name something, and returns the plan the run workflow walks:
 * each step with the steps it needs (dependsOn plus every step its arguments or forEach refer to). Tools are checked
 * separately (that needs the registry). Throws AgentDefinitionError naming the first step at fault.
 */
export function planAgent(def: AgentDefinition, opts: { stepKinds: ReadonlySet<string> }): PlannedStep[] {
  const ids = new Set<string>();
  for (const step of def.steps) {
    if (ids.has(step.id)) throw new AgentDefinitionError('DuplicateStep', step.id, 'another step has this id');
    ids.add(step.id);
  }
  const inputs = declaredInputs(def.inputSchema);
  const plan: PlannedStep[] = def.steps.map((step) => {
    const kind = step.kind ?? 'tool';
    if (kind === 'tool' && !step.tool) throw new AgentDefinitionError('InvalidStep', step.id, 'a tool step needs a tool');
    if (kind !== 'tool' && !opts.stepKinds.has(kind)) throw new AgentDefinitionError('UnknownStepKind', step.id, `no step kind "${kind}"`);
    const needs = new Set<string>();
    for (const dep of step.dependsOn ?? []) {
      if (!ids.has(dep)) throw new AgentDefinitionError('UnknownStep', step.id, `depends on "${dep}", which is not a step of this agent`);
      needs.add(dep);
    }
    const refs = [...collectRefs(step.arguments), ...(step.forEach ? [step.forEach.$ref] : [])];
    if (step.forEach && collectRefs(step.forEach).length === 0) throw new AgentDefinitionError('InvalidStep', step.id, 'forEach must be a {"$ref": …}');
    for (const ref of refs) {
      const parsed = parseRef(ref);
      if ('error' in parsed) throw new AgentDefinitionError('UnknownReference', step.id, parsed.error);
      const { root } = parsed;
      if (root.kind === 'item' && (!step.forEach || ref === step.forEach.$ref)) {
        throw new AgentDefinitionError('UnknownReference', step.id, `"${ref}": item exists only in the arguments of a forEach step`);
      }
      if (root.kind === 'input' && inputs && parsed.path[0] !== undefined && !inputs.has(parsed.path[0])) {
        throw new AgentDefinitionError('UnknownReference', step.id, `"${ref}": the input schema declares no "${parsed.path[0]}"`);
      }
      if (root.kind === 'step') {
        if (!ids.has(root.step)) throw new AgentDefinitionError('UnknownReference', step.id, `"${ref}" names no step of this agent`);
        if (root.step === step.id) throw new AgentDefinitionError('DependencyCycle', step.id, `"${ref}" refers to the step itself`);
        needs.add(root.step);
      }
    }
    return { id: step.id, kind, ...(step.tool ? { tool: step.tool } : {}), needs: [...needs], forEach: !!step.forEach, heavy: step.heavy ?? false, consentToOracle: step.consentToOracle ?? false };
  });
  const cyclic = findCycle(plan);
  if (cyclic) throw new AgentDefinitionError('DependencyCycle', cyclic[0]!, `is part of a dependency cycle (each needs the next): ${[...cyclic, cyclic[0]].join(' → ')}`);
  return plan;
}

/** One cycle (its steps in order), or undefined when the graph is acyclic. Iterative DFS: no recursion limit. */
function findCycle(plan: PlannedStep[]): string[] | undefined {
  const needs = new Map(plan.map((s) => [s.id, s.needs]));
  const state = new Map<string, 'open' | 'done'>();
  for (const start of plan.map((s) => s.id)) {
    if (state.has(start)) continue;
    const path: string[] = [];
    const stack: Array<{ id: string; next: number }> = [{ id: start, next: 0 }];
    state.set(start, 'open');
    path.push(start);
    while (stack.length > 0) {
      const top = stack.at(-1)!;
      const deps = needs.get(top.id)!;
      if (top.next >= deps.length) {
        state.set(top.id, 'done');
        stack.pop();
        path.pop();
        continue;
      }
      const dep = deps[top.next++]!;
      if (state.get(dep) === 'open') return path.slice(path.indexOf(dep));
      if (!state.has(dep)) {
        state.set(dep, 'open');
        path.push(dep);
        stack.push({ id: dep, next: 0 });
      }
    }
  }
  return undefined;
}

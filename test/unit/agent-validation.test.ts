import assert from 'node:assert/strict';
import type { AgentDefinition } from '../../src/core/agent-model.ts';
import { collectRefs, parseRef, resolveRefs, RefNotFoundError } from '../../src/core/agent-refs.ts';
import { AgentDefinitionError, planAgent } from '../../src/core/agent-validation.ts';

const kinds = { stepKinds: new Set(['value']) };
const def = (steps: AgentDefinition['steps'], inputSchema?: Record<string, unknown>): AgentDefinition => ({ name: 'a', steps, ...(inputSchema ? { inputSchema } : {}) });

function rejects(d: AgentDefinition, code: string, step: string) {
  assert.throws(
    () => planAgent(d, kinds),
    (err: unknown) => err instanceof AgentDefinitionError && err.code === code && err.details?.step === step && err.message.includes(`"${step}"`),
    `expected ${code} naming ${step}`,
  );
}

describe('agent definitions: references and DAG validation', function () {
  it('plans each step with what it needs: dependsOn plus the steps its references name', function () {
    const plan = planAgent(
      def([
        { id: 'list', tool: 'echo', arguments: { text: { $ref: 'input.text' } } },
        { id: 'each', tool: 'echo', forEach: { $ref: 'steps.list.output.items' }, arguments: { text: { $ref: 'item.name' } } },
        { id: 'gather', kind: 'value', dependsOn: ['list'], arguments: { all: { $ref: 'steps.each.output' } }, heavy: true },
      ]),
      kinds,
    );
    assert.deepEqual(plan, [
      { id: 'list', kind: 'tool', tool: 'echo', needs: [], forEach: false, heavy: false, consentToOracle: false },
      { id: 'each', kind: 'tool', tool: 'echo', needs: ['list'], forEach: true, heavy: false, consentToOracle: false },
      { id: 'gather', kind: 'value', needs: ['list', 'each'], forEach: false, heavy: true, consentToOracle: false },
    ]);
  });

  it('refuses unknown steps, unknown references, cycles, duplicates and unknown kinds, naming the step', function () {
    rejects(def([{ id: 'a', tool: 'echo', arguments: {}, dependsOn: ['ghost'] }]), 'UnknownStep', 'a');
    rejects(def([{ id: 'a', tool: 'echo', arguments: {} }, { id: 'b', tool: 'echo', arguments: { x: { $ref: 'steps.ghost.output' } } }]), 'UnknownReference', 'b');
    rejects(def([{ id: 'a', tool: 'echo', arguments: { x: { $ref: 'nowhere.x' } } }]), 'UnknownReference', 'a');
    rejects(def([{ id: 'a', tool: 'echo', arguments: { x: { $ref: 'steps.b.result' } } }, { id: 'b', tool: 'echo', arguments: {} }]), 'UnknownReference', 'a');
    rejects(def([{ id: 'a', tool: 'echo', arguments: { x: { $ref: 'item' } } }]), 'UnknownReference', 'a');
    rejects(def([{ id: 'a', tool: 'echo', arguments: { x: { $ref: 'input.nope' } } }], { type: 'object', properties: { text: {} } }), 'UnknownReference', 'a');
    rejects(def([{ id: 'a', tool: 'echo', arguments: { x: { $ref: 'steps.a.output' } } }]), 'DependencyCycle', 'a');
    rejects(
      def([
        { id: 'a', tool: 'echo', arguments: {}, dependsOn: ['c'] },
        { id: 'b', tool: 'echo', arguments: { x: { $ref: 'steps.a.output' } } },
        { id: 'c', tool: 'echo', arguments: {}, dependsOn: ['b'] },
      ]),
      'DependencyCycle',
      'a',
    );
    rejects(def([{ id: 'a', tool: 'echo', arguments: {} }, { id: 'a', tool: 'echo', arguments: {} }]), 'DuplicateStep', 'a');
    rejects(def([{ id: 'a', kind: 'kg.nothing', arguments: {} }]), 'UnknownStepKind', 'a');
    rejects(def([{ id: 'a', arguments: {} }]), 'InvalidStep', 'a');
  });

  it('a long chain is checked without recursion', function () {
    const steps = Array.from({ length: 5000 }, (_, i) => ({ id: `s${i}`, tool: 'echo', arguments: {}, ...(i > 0 ? { dependsOn: [`s${i - 1}`] } : {}) }));
    assert.equal(planAgent(def(steps), kinds).length, 5000);
    steps[0] = { ...steps[0]!, dependsOn: ['s4999'] };
    rejects(def(steps), 'DependencyCycle', 's0');
  });

  it('parses and resolves references; a reference that names nothing fails instead of passing undefined', async function () {
    assert.deepEqual(parseRef('steps.a.output.x.0'), { root: { kind: 'step', step: 'a' }, path: ['x', '0'] });
    assert.ok('error' in parseRef('steps..output'));
    assert.deepEqual(collectRefs({ a: [{ $ref: 'input.x' }, { b: { $ref: 'item' } }], c: { $ref: 1 } }), ['input.x', 'item']);
    const roots = { input: { files: ['a', 'b'] }, item: { name: 'n' }, a: { list: [{ v: 7 }] } };
    const lookup = async (r: { kind: string; step?: string }) => (r.kind === 'step' ? roots[r.step as 'a'] : roots[r.kind as 'input' | 'item']);
    const out = await resolveRefs({ f: { $ref: 'input.files.1' }, n: [{ $ref: 'item.name' }], v: { $ref: 'steps.a.output.list.0.v' }, keep: { $ref: 'x', other: 1 } }, lookup);
    assert.deepEqual(out, { f: 'b', n: ['n'], v: 7, keep: { $ref: 'x', other: 1 } });
    await assert.rejects(resolveRefs({ x: { $ref: 'input.files.9' } }, lookup), RefNotFoundError);
    await assert.rejects(resolveRefs({ x: { $ref: 'input.toString' } }, lookup), RefNotFoundError);
  });
});

import assert from 'node:assert/strict';
import { kgUpsertStepKind } from '../../src/core/kg-upsert-step-kind.ts';

// What `kg.upsert` accepts when an agent is saved (references unresolved) and when a run resolves them.

describe('kg.upsert step kind', function () {
  const writes: unknown[] = [];
  const kind = kgUpsertStepKind({ kg: { upsert: async (projectId, graph) => (writes.push({ projectId, graph }), { entities: graph.entities?.length ?? 0, relations: graph.relations?.length ?? 0 }) } });

  it('at save time accepts references wherever a value goes, and refuses what is written out wrong', function () {
    kind.validate!({ entities: { $ref: 'steps.a.output' } });
    kind.validate!({ entities: [{ name: { $ref: 'input.who' }, entityType: 'person' }], relations: { $ref: 'steps.b.output.links' } });
    assert.throws(() => kind.validate!({ entities: [{ name: 'x' }] }), /entities\.0\.entityType/);
    assert.throws(() => kind.validate!({ entities: [{ name: { $ref: 'input.who' }, entityType: 7 }] }), /entities\.0\.entityType/);
    assert.throws(() => kind.validate!({ relations: [{ from: 'a', to: 'b' }] }), /relationType/);
    assert.throws(() => kind.validate!({ nodes: [] }), /nodes/);
    assert.throws(() => kind.validate!({}), /entities or relations/);
  });

  it('at run time writes the resolved graph, observations defaulting to none, or fails naming the step', async function () {
    const out = await kind.run({ projectId: 'p1', runId: 'r', stepId: 'save', arguments: { entities: [{ name: 'Ada', entityType: 'person' }], relations: [{ from: 'Ada', to: 'B', relationType: 'knows' }] } });
    assert.deepEqual(out, { entities: 1, relations: 1 });
    assert.deepEqual(writes.at(-1), { projectId: 'p1', graph: { entities: [{ name: 'Ada', entityType: 'person', observations: [] }], relations: [{ from: 'Ada', to: 'B', relationType: 'knows' }] } });
    const before = writes.length;
    await assert.rejects(kind.run({ projectId: 'p1', runId: 'r', stepId: 'save', arguments: { entities: 'not a list' } }), /step "save".*entities/);
    assert.equal(writes.length, before, 'nothing written');
  });
});

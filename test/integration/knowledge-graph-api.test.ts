import assert from 'node:assert/strict';
import { startStack, type Stack } from '../support/stack.ts';

// The knowledge graph over REST, through the real API: writes and what they store, the reads, roles, and bounds.

describe('knowledge graph API', function () {
  let stack: Stack;
  let alice: string;
  let vic: string;
  let projectId: string;
  const kg = (rest: string) => `/v1/projects/${projectId}/kg${rest}`;

  before(async function () {
    stack = await startStack({ worker: false });
    [alice, vic] = await Promise.all([stack.token('alice'), stack.token('vic')]);
    projectId = (await stack.api('POST', '/v1/projects', { token: alice, body: { name: 'kg-api' } })).body.id;
    assert.equal((await stack.api('POST', `/v1/projects/${projectId}/members`, { token: alice, body: { login: 'vic', role: 'viewer' } })).status, 201);
  });

  after(async function () {
    await stack?.stop();
  });

  it('creates entities, relations and observations idempotently and stores them', async function () {
    const entities = [
      { name: 'alice', entityType: 'person', observations: ['likes green tea'] },
      { name: 'acme', entityType: 'company', observations: ['builds rockets'] },
      { name: 'bob', entityType: 'person', observations: [] },
      { name: 'rockets', entityType: 'product', observations: [] },
    ];
    const created = await stack.api('POST', kg('/entities'), { token: alice, body: { entities } });
    assert.equal(created.status, 200, created.text);
    assert.equal(created.body.entities.length, 4);
    const again = await stack.api('POST', kg('/entities'), { token: alice, body: { entities } });
    assert.deepEqual(again.body, { entities: [] });

    const relations = [
      { from: 'alice', to: 'acme', relationType: 'works_at' },
      { from: 'bob', to: 'alice', relationType: 'knows' },
      { from: 'acme', to: 'rockets', relationType: 'makes' },
    ];
    assert.equal((await stack.api('POST', kg('/relations'), { token: alice, body: { relations } })).body.relations.length, 3);
    assert.deepEqual((await stack.api('POST', kg('/relations'), { token: alice, body: { relations } })).body, { relations: [] });

    const obs = await stack.api('POST', kg('/observations'), { token: alice, body: { observations: [{ entityName: 'bob', contents: ['plays chess', 'plays chess'] }] } });
    assert.deepEqual(obs.body, { results: [{ entityName: 'bob', addedObservations: ['plays chess'] }] });
    const missing = await stack.api('POST', kg('/observations'), { token: alice, body: { observations: [{ entityName: 'ghost', contents: ['x'] }] } });
    assert.equal(missing.status, 404);
    assert.equal(missing.body.code, 'EntityNotFound');

    const rows = await stack.world.db.selectFrom('kg_entities').select(['name', 'observations']).where('project_id', '=', projectId).orderBy('id').execute();
    assert.deepEqual(rows.map((r) => r.name), ['alice', 'acme', 'bob', 'rockets']);
    assert.deepEqual(rows[2]!.observations, ['plays chess']);
  });

  it('searches, opens nodes, walks neighbours, finds paths and pages the graph', async function () {
    const search = await stack.api('GET', kg('/search?q=rocket'), { token: vic });
    assert.equal(search.status, 200, search.text);
    assert.deepEqual(search.body.items.map((i: any) => i.name), ['rockets', 'acme'], 'the name match ranks first');

    const nodes = await stack.api('GET', kg('/nodes?names=alice&names=ghost'), { token: vic });
    assert.deepEqual(nodes.body.entities.map((e: any) => e.name), ['alice']);
    assert.equal(nodes.body.relations.length, 2);

    const near = await stack.api('GET', kg('/entities/bob/neighbours?depth=2'), { token: vic });
    assert.equal(near.status, 200, near.text);
    assert.deepEqual(near.body.entities.map((e: any) => [e.name, e.depth]), [['bob', 0], ['alice', 1], ['acme', 2]]);
    const typed = await stack.api('GET', kg('/entities/bob/neighbours?depth=5&relationType=knows'), { token: vic });
    assert.deepEqual(typed.body.entities.map((e: any) => e.name), ['bob', 'alice']);
    assert.equal((await stack.api('GET', kg('/entities/ghost/neighbours'), { token: vic })).status, 404);

    const path = await stack.api('GET', kg('/path?from=bob&to=rockets'), { token: vic });
    assert.deepEqual(path.body.names, ['bob', 'alice', 'acme', 'rockets']);
    assert.equal(path.body.relations.length, 3);
    assert.equal((await stack.api('GET', kg('/path?from=bob&to=rockets&maxDepth=2'), { token: vic })).body.names, null);

    const page1 = await stack.api('GET', kg('/graph?limit=3'), { token: vic });
    assert.equal(page1.body.entities.length, 3);
    assert.ok(page1.body.nextCursor);
    const page2 = await stack.api('GET', kg(`/graph?limit=3&cursor=${page1.body.nextCursor}`), { token: vic });
    assert.deepEqual(page2.body.entities.map((e: any) => e.name), ['rockets']);
    assert.equal(page2.body.nextCursor, null);
    assert.equal((await stack.api('GET', kg('/graph?cursor=garbage'), { token: vic })).status, 400);
  });

  it('viewers read but may not write; deletes are idempotent', async function () {
    for (const [path, body] of [
      ['/entities', { entities: [{ name: 'v', entityType: 't', observations: [] }] }],
      ['/entities/delete', { entityNames: ['alice'] }],
      ['/relations', { relations: [] }],
      ['/observations/delete', { deletions: [] }],
    ] as const) {
      const res = await stack.api('POST', kg(path), { token: vic, body });
      assert.equal(res.status, 403, `${path}: ${res.text}`);
    }
    assert.equal((await stack.api('DELETE', kg('/entities/alice'), { token: vic })).status, 403);

    assert.equal((await stack.api('POST', kg('/observations/delete'), { token: alice, body: { deletions: [{ entityName: 'alice', observations: ['likes green tea'] }] } })).status, 204);
    assert.equal((await stack.api('POST', kg('/relations/delete'), { token: alice, body: { relations: [{ from: 'bob', to: 'alice', relationType: 'knows' }] } })).status, 204);
    assert.equal((await stack.api('DELETE', kg('/entities/acme'), { token: alice })).status, 204);
    assert.equal((await stack.api('DELETE', kg('/entities/acme'), { token: alice })).status, 204, 'deleting again is fine');
    assert.equal((await stack.api('POST', kg('/entities/delete'), { token: alice, body: { entityNames: ['rockets', 'ghost'] } })).status, 204);
    const graph = await stack.api('GET', kg('/graph'), { token: alice });
    assert.deepEqual(graph.body.entities, [
      { name: 'alice', entityType: 'person', observations: [] },
      { name: 'bob', entityType: 'person', observations: ['plays chess'] },
    ]);
    assert.deepEqual(graph.body.relations, []);
  });

  it('refuses input beyond the bounds with a 400 problem, and stores nothing', async function () {
    const before = await stack.world.db.selectFrom('kg_entities').select('name').where('project_id', '=', projectId).execute();
    const cases: Array<[string, string, unknown?]> = [
      ['POST', '/entities', { entities: Array.from({ length: 1001 }, (_, i) => ({ name: `n${i}`, entityType: 't', observations: [] })) }],
      ['POST', '/entities', { entities: [{ name: 'x'.repeat(257), entityType: 't', observations: [] }] }],
      ['POST', '/entities', { entities: [{ name: 'ok', entityType: 't', observations: ['o'.repeat(4097)] }] }],
      ['POST', '/entities', { entities: [{ name: 'ok', entityType: 't' }] }],
      ['POST', '/entities', { entities: [{ name: 'ok', entityType: 't', observations: [], extra: 1 }] }],
      ['POST', '/relations', { relations: 'nope' }],
      ['GET', '/search'],
      ['GET', `/search?q=${'q'.repeat(300)}`],
      ['GET', '/entities/alice/neighbours?depth=6'],
      ['GET', '/entities/alice/neighbours?depth=abc'],
      ['GET', '/path?from=alice'],
      ['GET', '/path?from=alice&to=bob&maxDepth=99'],
      ['GET', '/graph?limit=0'],
      ['GET', '/nodes'],
    ];
    for (const [method, path, body] of cases) {
      const res = await stack.api(method, kg(path), { token: alice, ...(body !== undefined ? { body } : {}) });
      assert.equal(res.status, 400, `${method} ${path} → ${res.status} ${res.text}`);
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
    }
    const after = await stack.world.db.selectFrom('kg_entities').select('name').where('project_id', '=', projectId).execute();
    assert.equal(after.length, before.length);
  });
});

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createKnowledgeGraph, type KnowledgeGraph } from '../../src/core/knowledge-graph.ts';
import { createTestDb, type TestDb } from '../support/test-db.ts';

// The knowledge graph service against a real Postgres: the reference server's idempotent writes, ranked search,
// neighbourhoods, shortest paths, pages, and one project never seeing another's graph.

describe('knowledge graph service', function () {
  let testDb: TestDb;
  let kg: KnowledgeGraph;

  async function newProject(): Promise<string> {
    const user = await testDb.db.insertInto('users').values({ login: `u-${randomUUID()}` }).returning('id').executeTakeFirstOrThrow();
    const p = await testDb.db.insertInto('projects').values({ name: 'kg', created_by: user.id }).returning('id').executeTakeFirstOrThrow();
    return p.id;
  }

  before(async function () {
    testDb = await createTestDb('kg');
    kg = createKnowledgeGraph({ db: testDb.db });
  });

  after(async function () {
    await testDb?.drop();
  });

  it('creating what exists is a no-op that answers only what was new', async function () {
    const p = await newProject();
    const first = await kg.createEntities(p, [
      { name: 'alice', entityType: 'person', observations: ['likes tea'] },
      { name: 'acme', entityType: 'company', observations: [] },
    ]);
    assert.deepEqual(first.map((e) => e.name), ['alice', 'acme']);
    const again = await kg.createEntities(p, [
      { name: 'alice', entityType: 'robot', observations: ['other'] },
      { name: 'bob', entityType: 'person', observations: ['a', 'a'] },
    ]);
    assert.deepEqual(again, [{ name: 'bob', entityType: 'person', observations: ['a'] }]);
    const rel = { from: 'alice', to: 'acme', relationType: 'works_at' };
    assert.deepEqual(await kg.createRelations(p, [rel, rel]), [rel]);
    assert.deepEqual(await kg.createRelations(p, [rel]), []);

    const added = await kg.addObservations(p, [{ entityName: 'alice', contents: ['likes tea', 'speaks Dutch'] }]);
    assert.deepEqual(added, [{ entityName: 'alice', addedObservations: ['speaks Dutch'] }]);
    await assert.rejects(kg.addObservations(p, [{ entityName: 'alice', contents: ['x'] }, { entityName: 'nobody', contents: ['y'] }]), { code: 'EntityNotFound' });

    const graph = await kg.readGraph(p);
    assert.deepEqual(graph.entities[0], { name: 'alice', entityType: 'person', observations: ['likes tea', 'speaks Dutch'] }, 'the failed call added nothing');
    assert.deepEqual(graph.relations, [rel]);

    await kg.deleteObservations(p, [{ entityName: 'alice', observations: ['likes tea'] }, { entityName: 'nobody', observations: ['z'] }]);
    await kg.deleteEntities(p, ['acme', 'ghost']);
    const after = await kg.readGraph(p);
    assert.deepEqual(after.entities, [
      { name: 'alice', entityType: 'person', observations: ['speaks Dutch'] },
      { name: 'bob', entityType: 'person', observations: ['a'] },
    ]);
    assert.deepEqual(after.relations, [], 'deleting an entity deletes the relations that name it');
    await kg.deleteRelations(p, [rel]);
  });

  it('upsert merges observations into existing entities inside the caller\'s transaction', async function () {
    const p = await newProject();
    await kg.createEntities(p, [{ name: 'svc', entityType: 'service', observations: ['written in Go'] }]);
    const counts = await testDb.db.transaction().execute((trx) =>
      kg.upsert(p, { entities: [{ name: 'svc', entityType: 'ignored', observations: ['written in Go', 'owned by team A'] }, { name: 'db', entityType: 'database', observations: [] }], relations: [{ from: 'svc', to: 'db', relationType: 'reads' }] }, trx),
    );
    assert.deepEqual(counts, { entities: 2, relations: 1 });
    const g = await kg.openNodes(p, ['svc']);
    assert.deepEqual(g.entities, [{ name: 'svc', entityType: 'service', observations: ['written in Go', 'owned by team A'] }]);
    assert.deepEqual(g.relations, [{ from: 'svc', to: 'db', relationType: 'reads' }]);
    await assert.rejects(
      testDb.db.transaction().execute(async (trx) => {
        await kg.upsert(p, { entities: [{ name: 'rolled-back', entityType: 't', observations: [] }] }, trx);
        throw new Error('abort');
      }),
    );
    assert.deepEqual((await kg.openNodes(p, ['rolled-back'])).entities, [], 'the upsert rolled back with its transaction');
  });

  it('answers the relations touching opened entities once each, both directions, in the order they were created', async function () {
    const p = await newProject();
    await kg.createEntities(p, ['a', 'b', 'c', 'd'].map((name) => ({ name, entityType: 't', observations: [] })));
    // Created out of name order, one between two opened entities (found by both ends), one each way to the outside,
    // one not touching them. Ids pass 9 → 10 on the way, so an order by the ids' text would put them wrong.
    const order = [
      { from: 'c', to: 'd', relationType: 'x' },
      ...Array.from({ length: 8 }, (_, i) => ({ from: 'c', to: 'd', relationType: `filler${i}` })),
      { from: 'd', to: 'a', relationType: 'in' },
      { from: 'b', to: 'a', relationType: 'both' },
      { from: 'a', to: 'c', relationType: 'out' },
      { from: 'b', to: 'b', relationType: 'self' },
    ];
    for (const r of order) await kg.createRelations(p, [r]);
    const g = await kg.openNodes(p, ['a', 'b']);
    assert.deepEqual(g.relations, [
      { from: 'd', to: 'a', relationType: 'in' },
      { from: 'b', to: 'a', relationType: 'both' },
      { from: 'a', to: 'c', relationType: 'out' },
      { from: 'b', to: 'b', relationType: 'self' },
    ]);
  });

  it('search ranks name matches above observation matches; search_nodes matches substrings like the reference', async function () {
    const p = await newProject();
    await kg.createEntities(p, [
      { name: 'notes', entityType: 'doc', observations: ['mentions kubernetes once'] },
      { name: 'kubernetes', entityType: 'platform', observations: ['kubernetes runs containers'] },
      { name: 'unrelated', entityType: 'doc', observations: ['nothing here'] },
      { name: '100%_done', entityType: 'status', observations: [] },
    ]);
    const hits = await kg.search(p, 'kubernetes', { limit: 10 });
    assert.deepEqual(hits.map((h) => h.name), ['kubernetes', 'notes']);
    assert.ok(hits[0]!.rank > hits[1]!.rank);
    assert.deepEqual((await kg.search(p, 'containers', { limit: 10 })).map((h) => h.name), ['kubernetes'], 'English stemming: container(s)');

    const sub = await kg.searchNodes(p, 'BERN');
    assert.deepEqual(sub.entities.map((e) => e.name).sort(), ['kubernetes', 'notes'], 'case-insensitive substring');
    assert.deepEqual((await kg.searchNodes(p, '%_')).entities.map((e) => e.name), ['100%_done'], 'LIKE wildcards are literal');
    assert.deepEqual((await kg.searchNodes(p, 'doc\nmentions')).entities, [], 'a match never spans two fields');
    assert.equal((await kg.searchNodes(p, '')).entities.length, 4, 'an empty query matches everything, as in the reference');
  });

  it('neighbours walk relations both ways to the asked depth, optionally of one type', async function () {
    const p = await newProject();
    // a → b → c → d, and a -likes-> x
    await kg.createEntities(p, ['a', 'b', 'c', 'd', 'x'].map((name) => ({ name, entityType: 'node', observations: [] })));
    await kg.createRelations(p, [
      { from: 'a', to: 'b', relationType: 'next' },
      { from: 'b', to: 'c', relationType: 'next' },
      { from: 'c', to: 'd', relationType: 'next' },
      { from: 'x', to: 'a', relationType: 'likes' },
    ]);
    const one = await kg.neighbours(p, 'b', { depth: 1 });
    assert.deepEqual(one.entities.map((e) => [e.name, e.depth]), [['b', 0], ['a', 1], ['c', 1]]);
    assert.deepEqual(one.relations.length, 2);
    const two = await kg.neighbours(p, 'a', { depth: 2 });
    assert.deepEqual(two.entities.map((e) => [e.name, e.depth]), [['a', 0], ['b', 1], ['x', 1], ['c', 2]]);
    const typed = await kg.neighbours(p, 'a', { depth: 5, relationType: 'next' });
    assert.deepEqual(typed.entities.map((e) => e.name), ['a', 'b', 'c', 'd']);
    assert.ok(typed.relations.every((r) => r.relationType === 'next'));
    const capped = await kg.neighbours(p, 'a', { depth: 5, limit: 2 });
    assert.equal(capped.entities.length, 2);
    assert.equal(capped.truncated, true);
    await assert.rejects(kg.neighbours(p, 'nobody', { depth: 1 }), { code: 'EntityNotFound' });
  });

  it('path finds a shortest path within the bound, crossing relations either way', async function () {
    const p = await newProject();
    await kg.createEntities(p, ['a', 'b', 'c', 'd', 'e', 'lonely'].map((name) => ({ name, entityType: 'node', observations: [] })));
    await kg.createRelations(p, [
      { from: 'a', to: 'b', relationType: 'r' },
      { from: 'b', to: 'c', relationType: 'r' },
      { from: 'c', to: 'd', relationType: 'r' },
      { from: 'e', to: 'd', relationType: 'r' },
      { from: 'a', to: 'e', relationType: 'shortcut' },
    ]);
    const shortest = await kg.path(p, 'a', 'd', { maxDepth: 6 });
    assert.deepEqual(shortest.names, ['a', 'e', 'd']);
    assert.deepEqual(shortest.relations, [
      { from: 'a', to: 'e', relationType: 'shortcut' },
      { from: 'e', to: 'd', relationType: 'r' },
    ]);
    assert.deepEqual((await kg.path(p, 'a', 'd', { maxDepth: 6, relationType: 'r' })).names, ['a', 'b', 'c', 'd']);
    assert.equal((await kg.path(p, 'a', 'd', { maxDepth: 2, relationType: 'r' })).names, null, 'not within two steps');
    assert.equal((await kg.path(p, 'a', 'lonely', { maxDepth: 6 })).names, null);
    assert.deepEqual((await kg.path(p, 'c', 'c', { maxDepth: 1 })).names, ['c']);
    await assert.rejects(kg.path(p, 'a', 'ghost', { maxDepth: 3 }), { code: 'EntityNotFound' });
  });

  it('pages through the whole graph with one cursor', async function () {
    const p = await newProject();
    await kg.createEntities(p, Array.from({ length: 7 }, (_, i) => ({ name: `n${i}`, entityType: 't', observations: [] })));
    await kg.createRelations(p, Array.from({ length: 3 }, (_, i) => ({ from: `n${i}`, to: `n${i + 1}`, relationType: 'r' })));
    const names: string[] = [];
    let relations = 0;
    let cursor: string | undefined;
    for (let pages = 0; ; pages++) {
      assert.ok(pages < 10);
      const page = await kg.graphPage(p, { limit: 3, ...(cursor !== undefined && { cursor }) });
      names.push(...page.entities.map((e) => e.name));
      relations += page.relations.length;
      if (!page.nextCursor) break;
      cursor = page.nextCursor;
    }
    assert.deepEqual(names, ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6']);
    assert.equal(relations, 3);
    await assert.rejects(kg.graphPage(p, { limit: 3, cursor: 'bm9wZQ' }), { code: 'InvalidCursor' });
  });

  it('one project never sees or changes another\'s graph', async function () {
    const [p1, p2] = [await newProject(), await newProject()];
    await kg.createEntities(p1, [{ name: 'secret', entityType: 'thing', observations: ['only p1 knows'] }]);
    assert.deepEqual((await kg.createEntities(p2, [{ name: 'secret', entityType: 'other', observations: [] }])).length, 1, 'the same name is new in p2');
    await kg.createRelations(p1, [{ from: 'secret', to: 'secret', relationType: 'self' }]);
    assert.deepEqual((await kg.searchNodes(p2, 'only p1')).entities, []);
    assert.deepEqual(await kg.search(p2, 'knows', { limit: 5 }), []);
    assert.deepEqual((await kg.neighbours(p2, 'secret', { depth: 2 })).relations, []);
    await kg.deleteEntities(p2, ['secret']);
    assert.deepEqual((await kg.openNodes(p1, ['secret'])).entities, [{ name: 'secret', entityType: 'thing', observations: ['only p1 knows'] }]);
    assert.equal((await kg.readGraph(p1)).relations.length, 1);
  });
});

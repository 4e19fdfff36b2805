import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import { NotFoundError } from './errors.ts';
import type { Entity, Graph, MemoryGraph, ObservationAddition, ObservationDeletion, Relation } from './knowledge-graph-model.ts';
import { createKnowledgeGraphQueries, toEntity, toRelation } from './knowledge-graph-queries.ts';

// Writes follow the reference memory server: creating what exists is a no-op and answers only what was new; adding
// observations to a missing entity fails the whole call; deleting what is not there is fine. Callers check access
// (project membership and role) before calling: the service knows projects, not users.

function uniqueBy<T>(items: T[], key: (t: T) => string): T[] {
  const seen = new Set<string>();
  return items.filter((t) => !seen.has(key(t)) && (seen.add(key(t)), true));
}
const relationKey = (r: Relation) => JSON.stringify([r.from, r.to, r.relationType]);

/** Runs `fn` in the caller's transaction when given one, else in a new one. */
function inTransaction<T>(db: Db, trx: Db | undefined, fn: (trx: Db) => Promise<T>): Promise<T> {
  return trx ? fn(trx) : db.transaction().execute(fn);
}

export function createKnowledgeGraph(deps: { db: Db }) {
  const { db } = deps;
  const queries = createKnowledgeGraphQueries({ db });

  async function createEntities(projectId: string, entities: Entity[], trx?: Db): Promise<Entity[]> {
    const unique = uniqueBy(entities, (e) => e.name);
    if (unique.length === 0) return [];
    const rows = await (trx ?? db)
      .insertInto('kg_entities')
      .values(unique.map((e) => ({ project_id: projectId, name: e.name, entity_type: e.entityType, observations: [...new Set(e.observations)] })))
      .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
      .returning(['name', 'entity_type', 'observations'])
      .execute();
    const created = new Map(rows.map((r) => [r.name, toEntity(r)]));
    return unique.flatMap((e) => created.get(e.name) ?? []);
  }

  async function createRelations(projectId: string, relations: Relation[], trx?: Db): Promise<Relation[]> {
    const unique = uniqueBy(relations, relationKey);
    if (unique.length === 0) return [];
    const rows = await (trx ?? db)
      .insertInto('kg_relations')
      .values(unique.map((r) => ({ project_id: projectId, from_name: r.from, to_name: r.to, relation_type: r.relationType })))
      .onConflict((oc) => oc.columns(['project_id', 'from_name', 'to_name', 'relation_type']).doNothing())
      .returning(['from_name', 'to_name', 'relation_type'])
      .execute();
    const created = new Set(rows.map((r) => relationKey(toRelation(r))));
    return unique.filter((r) => created.has(relationKey(r)));
  }

  /** Locks the named entities of the project for the rest of the transaction and returns their observations. */
  async function lockObservations(trx: Db, projectId: string, names: string[]): Promise<Map<string, string[]>> {
    const rows = await trx
      .selectFrom('kg_entities')
      .select(['name', 'observations'])
      .where('project_id', '=', projectId)
      .where('name', '=', sql<string>`any(${sql.val([...new Set(names)])}::text[])`)
      .orderBy('id')
      .forUpdate()
      .execute();
    return new Map(rows.map((r) => [r.name, r.observations]));
  }

  async function saveObservations(trx: Db, projectId: string, changed: Map<string, string[]>): Promise<void> {
    for (const [name, observations] of changed) {
      await trx.updateTable('kg_entities').set({ observations, updated_at: new Date() }).where('project_id', '=', projectId).where('name', '=', name).execute();
    }
  }

  async function addObservations(projectId: string, additions: ObservationAddition[], trx?: Db) {
    return inTransaction(db, trx, async (t) => {
      const current = await lockObservations(t, projectId, additions.map((a) => a.entityName));
      const changed = new Map<string, string[]>();
      const results = additions.map(({ entityName, contents }) => {
        const observations = current.get(entityName);
        if (!observations) throw new NotFoundError('Entity', entityName);
        const added = [...new Set(contents)].filter((c) => !observations.includes(c));
        if (added.length > 0) {
          observations.push(...added);
          changed.set(entityName, observations);
        }
        return { entityName, addedObservations: added };
      });
      await saveObservations(t, projectId, changed);
      return results;
    });
  }

  async function deleteObservations(projectId: string, deletions: ObservationDeletion[], trx?: Db): Promise<void> {
    await inTransaction(db, trx, async (t) => {
      const current = await lockObservations(t, projectId, deletions.map((d) => d.entityName));
      const changed = new Map<string, string[]>();
      for (const { entityName, observations: doomed } of deletions) {
        const observations = changed.get(entityName) ?? current.get(entityName);
        if (!observations) continue;
        const kept = observations.filter((o) => !doomed.includes(o));
        if (kept.length !== observations.length) changed.set(entityName, kept);
      }
      await saveObservations(t, projectId, changed);
    });
  }

  async function deleteEntities(projectId: string, names: string[], trx?: Db): Promise<void> {
    if (names.length === 0) return;
    const list = sql<string>`any(${sql.val([...new Set(names)])}::text[])`;
    await inTransaction(db, trx, async (t) => {
      await t.deleteFrom('kg_relations').where('project_id', '=', projectId).where((eb) => eb.or([eb('from_name', '=', list), eb('to_name', '=', list)])).execute();
      await t.deleteFrom('kg_entities').where('project_id', '=', projectId).where('name', '=', list).execute();
    });
  }

  async function deleteRelations(projectId: string, relations: Relation[], trx?: Db): Promise<void> {
    if (relations.length === 0) return;
    await (trx ?? db)
      .deleteFrom('kg_relations')
      .where('project_id', '=', projectId)
      .where(({ eb, refTuple, tuple }) =>
        eb(
          refTuple('from_name', 'to_name', 'relation_type'),
          'in',
          relations.map((r) => tuple(r.from, r.to, r.relationType)),
        ),
      )
      .execute();
  }

  /**
   * Merges entities and relations into the graph: new entities are created, existing ones gain the observations they
   * lack (their type stays), relations are created unless present. For writers that map their output into the graph
   * (agent steps); runs inside the caller's transaction when given one.
   */
  async function upsert(projectId: string, input: Partial<Graph>, trx?: Db): Promise<{ entities: number; relations: number }> {
    const entities = uniqueBy(input.entities ?? [], (e) => e.name);
    const relations = input.relations ?? [];
    return inTransaction(db, trx, async (t) => {
      if (entities.length > 0) {
        await t
          .insertInto('kg_entities')
          .values(entities.map((e) => ({ project_id: projectId, name: e.name, entity_type: e.entityType, observations: [...new Set(e.observations)] })))
          .onConflict((oc) =>
            oc.columns(['project_id', 'name']).doUpdateSet({
              observations: sql`kg_entities.observations || array(select o from unnest(excluded.observations) with ordinality as t(o, i) where o <> all(kg_entities.observations) order by i)`,
              updated_at: new Date(),
            }),
          )
          .execute();
      }
      const created = await createRelations(projectId, relations, t);
      return { entities: entities.length, relations: created.length };
    });
  }

  /** The reference server's operations bound to one project: what the memory tools serve. */
  function forProject(projectId: string): MemoryGraph {
    return {
      createEntities: (entities) => createEntities(projectId, entities),
      createRelations: (relations) => createRelations(projectId, relations),
      addObservations: (additions) => addObservations(projectId, additions),
      deleteEntities: (names) => deleteEntities(projectId, names),
      deleteObservations: (deletions) => deleteObservations(projectId, deletions),
      deleteRelations: (relations) => deleteRelations(projectId, relations),
      readGraph: () => queries.readGraph(projectId),
      searchNodes: (query) => queries.searchNodes(projectId, query),
      openNodes: (names) => queries.openNodes(projectId, names),
    };
  }

  return {
    createEntities,
    createRelations,
    addObservations,
    deleteEntities,
    deleteObservations,
    deleteRelations,
    upsert,
    forProject,
    ...queries,
  };
}

export type KnowledgeGraph = ReturnType<typeof createKnowledgeGraph>;

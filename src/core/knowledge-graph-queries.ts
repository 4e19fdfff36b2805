import { sql } from 'kysely';
import type { Db } from '../db/create-db.ts';
import { DomainError, InvalidRequestError, NotFoundError } from './errors.ts';
import { KG_LIMITS, type Entity, type Graph, type Relation } from './knowledge-graph-model.ts';

// Reads of a project's graph: the reference server's reads (whole graph, substring search, open by name) and what it
// cannot do at scale (ranked full-text search, neighbourhoods, shortest paths, pages).

type EntityRow = { name: string; entity_type: string; observations: string[] };
export const toEntity = (r: EntityRow): Entity => ({ name: r.name, entityType: r.entity_type, observations: r.observations });
export const toRelation = (r: { from_name: string; to_name: string; relation_type: string }): Relation => ({ from: r.from_name, to: r.to_name, relationType: r.relation_type });

/** bigserial ids arrive as decimal strings: the shorter is the smaller, else they compare as text. */
const compareIds = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
const textList = (xs: string[]) => sql<string>`any(${sql.val([...new Set(xs)])}::text[])`;
/** LIKE treats % and _ as wildcards and \ as its escape: a query means its characters literally. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

/** read_graph on a graph past KG_LIMITS.readGraphCap: the message says where to read it a page at a time. */
export class GraphTooLargeError extends DomainError {
  constructor(projectId: string, cap: number) {
    super(
      'GraphTooLarge',
      `the knowledge graph has more than ${cap} entities or relations, too many to answer at once: read it a page at a time with GET /v1/projects/${projectId}/kg/graph?limit=1000 (follow nextCursor), or look things up with search_nodes and open_nodes`,
      { cap },
    );
  }
}

export interface SearchHit extends Entity {
  rank: number;
}

export interface Neighbourhood {
  entities: Array<Entity & { depth: number }>;
  relations: Relation[];
  truncated: boolean;
}

export interface GraphPath {
  from: string;
  to: string;
  /** Entity names from `from` to `to`; null when no path exists within the bound. */
  names: string[] | null;
  /** The relation crossed at each step, as stored (a step may cross a relation against its direction). */
  relations: Relation[];
}

export function createKnowledgeGraphQueries(deps: { db: Db }) {
  const { db } = deps;

  const entityColumns = ['name', 'entity_type', 'observations'] as const;
  const relationColumns = ['from_name', 'to_name', 'relation_type'] as const;

  /**
   * Relations with at least one end among `names`: how the reference server answers searches and opens. Outgoing and
   * incoming are two plain index scans run side by side, merged here in insertion order (a relation with both ends
   * among `names` comes back from both and is kept once): for a search's few hundred names, 0.6–0.7 of the time of
   * one query with an OR, which the planner answers with a bitmap scan of each index and a heap fetch per block.
   */
  async function relationsTouching(projectId: string, names: string[]): Promise<Relation[]> {
    if (names.length === 0) return [];
    const list = textList(names);
    const touching = (end: 'from_name' | 'to_name') =>
      db.selectFrom('kg_relations').select(['id', ...relationColumns]).where('project_id', '=', projectId).where(end, '=', list).execute();
    const [outgoing, incoming] = await Promise.all([touching('from_name'), touching('to_name')]);
    const byId = new Map<string, (typeof outgoing)[number]>();
    for (const row of [...outgoing, ...incoming]) byId.set(String(row.id), row);
    return [...byId.values()].sort((a, b) => compareIds(String(a.id), String(b.id))).map(toRelation);
  }

  async function requireEntity(projectId: string, name: string): Promise<Entity> {
    const row = await db.selectFrom('kg_entities').select(entityColumns).where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst();
    if (!row) throw new NotFoundError('Entity', name);
    return toEntity(row);
  }

  return {
    /** The whole graph, as the reference server answers it, while it fits KG_LIMITS.readGraphCap; else GraphTooLarge. */
    async readGraph(projectId: string): Promise<Graph> {
      const cap = KG_LIMITS.readGraphCap;
      const [entities, relations] = await Promise.all([
        db.selectFrom('kg_entities').select(entityColumns).where('project_id', '=', projectId).orderBy('id').limit(cap + 1).execute(),
        db.selectFrom('kg_relations').select(relationColumns).where('project_id', '=', projectId).orderBy('id').limit(cap + 1).execute(),
      ]);
      if (entities.length > cap || relations.length > cap) throw new GraphTooLargeError(projectId, cap);
      return { entities: entities.map(toEntity), relations: relations.map(toRelation) };
    },

    /**
     * The reference server's search: entities whose name, type or an observation contains the query, ignoring case,
     * with the relations that touch them. The trigram index finds candidates; the exact test keeps a match from
     * spanning two fields. Best full-text matches first, then in the order they were created; at most
     * KG_LIMITS.searchNodesCap entities (then `truncated: true`), so a query of one letter cannot ask for the whole graph.
     */
    async searchNodes(projectId: string, query: string): Promise<Graph & { truncated?: true }> {
      const cap = KG_LIMITS.searchNodesCap;
      const q = query.toLowerCase();
      const rows = await db
        .selectFrom('kg_entities')
        .select(entityColumns)
        .where('project_id', '=', projectId)
        .where('search_text', 'like', `%${likeLiteral(q)}%`)
        .where(
          sql<boolean>`(strpos(lower(name), ${q}) > 0 or strpos(lower(entity_type), ${q}) > 0 or exists (select 1 from unnest(observations) as o where strpos(lower(o), ${q}) > 0))`,
        )
        .orderBy(sql`ts_rank_cd(search, websearch_to_tsquery('english', ${query}))`, 'desc')
        .orderBy('id')
        .limit(cap + 1)
        .execute();
      const entities = rows.slice(0, cap).map(toEntity);
      const relations = await relationsTouching(projectId, entities.map((e) => e.name));
      return rows.length > cap ? { entities, relations, truncated: true } : { entities, relations };
    },

    async openNodes(projectId: string, names: string[]): Promise<Graph> {
      if (names.length === 0) return { entities: [], relations: [] };
      const rows = await db.selectFrom('kg_entities').select(entityColumns).where('project_id', '=', projectId).where('name', '=', textList(names)).orderBy('id').execute();
      const entities = rows.map(toEntity);
      return { entities, relations: await relationsTouching(projectId, entities.map((e) => e.name)) };
    },

    /** Postgres full-text search (English stemming) over names (weighted most), types and observations, ranked. */
    async search(projectId: string, query: string, opts: { limit: number }): Promise<SearchHit[]> {
      const tsq = sql`websearch_to_tsquery('english', ${query})`;
      const rows = await db
        .selectFrom('kg_entities')
        .select([...entityColumns, sql<number>`ts_rank_cd(search, ${tsq})`.as('rank')])
        .where('project_id', '=', projectId)
        .where(sql<boolean>`search @@ ${tsq}`)
        .orderBy('rank', 'desc')
        .orderBy('id')
        .limit(opts.limit)
        .execute();
      return rows.map((r) => ({ ...toEntity(r), rank: Number(r.rank) }));
    },

    /**
     * Entities within `depth` relations of `name`, following relations both ways (only those of `relationType` when
     * given), each with its distance, and the relations among them. A recursive query walks outwards a level at a time;
     * each step is two index lookups (outgoing, incoming) rather than one OR the planner would answer with a scan.
     */
    async neighbours(projectId: string, name: string, opts: { depth: number; relationType?: string; limit?: number }): Promise<Neighbourhood> {
      const limit = opts.limit ?? KG_LIMITS.neighboursCap;
      const typeFilter = opts.relationType === undefined ? sql`` : sql`and r.relation_type = ${opts.relationType}`;
      // The walk and the entities it reached in one statement (the start is its first row, depth 0, so whether it
      // exists comes along); a name a relation points at without an entity row has null columns and is left out.
      const reached = await sql<{ name: string; depth: number; entity_type: string | null; observations: string[] | null }>`
        with recursive walk(name, depth) as (
          select ${name}::text, 0
          union
          select n.name, w.depth + 1
          from walk w
          cross join lateral (
            select r.to_name as name from kg_relations r where r.project_id = ${projectId} and r.from_name = w.name ${typeFilter}
            union all
            select r.from_name from kg_relations r where r.project_id = ${projectId} and r.to_name = w.name ${typeFilter}
          ) n
          where w.depth < ${opts.depth}
        ),
        kept as (select name, min(depth)::int as depth from walk group by name order by depth, name limit ${limit + 1})
        select k.name, k.depth, e.entity_type, e.observations
        from kept k left join kg_entities e on e.project_id = ${projectId} and e.name = k.name
        order by k.depth, k.name`.execute(db);
      if (reached.rows[0]?.entity_type == null) throw new NotFoundError('Entity', name);
      const truncated = reached.rows.length > limit;
      const kept = reached.rows.slice(0, limit);
      const list = textList(kept.map((r) => r.name));
      const relations = await db
        .selectFrom('kg_relations')
        .select(relationColumns)
        .where('project_id', '=', projectId)
        .where('from_name', '=', list)
        .where('to_name', '=', list)
        .$if(opts.relationType !== undefined, (qb) => qb.where('relation_type', '=', opts.relationType!))
        .orderBy('id')
        .execute();
      const entities = kept.flatMap((r) => (r.entity_type === null ? [] : [{ ...toEntity(r as EntityRow), depth: r.depth }]));
      return {
        entities: entities.sort((a, b) => a.depth - b.depth || a.name.localeCompare(b.name)),
        relations: relations.map(toRelation),
        truncated,
      };
    },

    /**
     * A shortest path between two entities, following relations both ways: breadth-first, one query per level, at
     * most `maxDepth` steps and KG_LIMITS.pathVisitCap visited entities (a dense graph cannot run it away).
     */
    async path(projectId: string, from: string, to: string, opts: { maxDepth: number; relationType?: string }): Promise<GraphPath> {
      await Promise.all([requireEntity(projectId, from), requireEntity(projectId, to)]);
      if (from === to) return { from, to, names: [from], relations: [] };
      const cameBy = new Map<string, { prev: string; relation: Relation } | null>([[from, null]]);
      let frontier = [from];
      for (let depth = 0; depth < opts.maxDepth && frontier.length > 0 && cameBy.size < KG_LIMITS.pathVisitCap; depth++) {
        const list = textList(frontier);
        const edges = await db
          .selectFrom('kg_relations')
          .select(relationColumns)
          .where('project_id', '=', projectId)
          .where((eb) => eb.or([eb('from_name', '=', list), eb('to_name', '=', list)]))
          .$if(opts.relationType !== undefined, (qb) => qb.where('relation_type', '=', opts.relationType!))
          .orderBy('id')
          .execute();
        const inFrontier = new Set(frontier);
        const next: string[] = [];
        for (const edge of edges) {
          const relation = toRelation(edge);
          for (const [a, b] of [[relation.from, relation.to], [relation.to, relation.from]] as const) {
            if (!inFrontier.has(a) || cameBy.has(b)) continue;
            cameBy.set(b, { prev: a, relation });
            next.push(b);
          }
        }
        if (cameBy.has(to)) {
          const names = [to];
          const relations: Relation[] = [];
          for (let step = cameBy.get(to); step; step = cameBy.get(step.prev)) {
            names.unshift(step.prev);
            relations.unshift(step.relation);
          }
          return { from, to, names, relations };
        }
        frontier = next;
      }
      return { from, to, names: null, relations: [] };
    },

    /**
     * One page of the whole graph: entities and relations each in creation order, with one cursor for both (a
     * relation may name entities that do not exist, so relations are paged on their own).
     */
    async graphPage(projectId: string, opts: { limit: number; cursor?: string }): Promise<Graph & { nextCursor: string | null }> {
      const after = opts.cursor === undefined ? { e: '0', r: '0' } : decodeCursor(opts.cursor);
      const [entities, relations] = await Promise.all([
        db.selectFrom('kg_entities').select(['id', ...entityColumns]).where('project_id', '=', projectId).where('id', '>', after.e).orderBy('id').limit(opts.limit + 1).execute(),
        db.selectFrom('kg_relations').select(['id', ...relationColumns]).where('project_id', '=', projectId).where('id', '>', after.r).orderBy('id').limit(opts.limit + 1).execute(),
      ]);
      const more = entities.length > opts.limit || relations.length > opts.limit;
      const e = entities.slice(0, opts.limit);
      const r = relations.slice(0, opts.limit);
      const nextCursor = more ? encodeCursor({ e: e.at(-1)?.id ?? after.e, r: r.at(-1)?.id ?? after.r }) : null;
      return { entities: e.map(toEntity), relations: r.map(toRelation), nextCursor };
    },
  };
}

function encodeCursor(c: { e: string; r: string }): string {
  return Buffer.from(`${c.e}.${c.r}`).toString('base64url');
}

function decodeCursor(cursor: string): { e: string; r: string } {
  const m = /^(\d{1,18})\.(\d{1,18})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!m) throw new InvalidRequestError('InvalidCursor', 'the cursor is not one this API handed out');
  return { e: m[1]!, r: m[2]! };
}

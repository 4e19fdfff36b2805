// The knowledge graph's model, the reference MCP memory server's: entities with a unique name, a type and ordered
// observations; relations between entity names, typed, in active voice ("alice works_at acme").

export interface Entity {
  name: string;
  entityType: string;
  observations: string[];
}

export interface Relation {
  from: string;
  to: string;
  relationType: string;
}

export interface Graph {
  entities: Entity[];
  relations: Relation[];
}

export interface ObservationAddition {
  entityName: string;
  contents: string[];
}

export interface ObservationDeletion {
  entityName: string;
  observations: string[];
}

/**
 * Bounds on what one request may carry. They keep a single call from holding a transaction for long or building a
 * row Postgres would have to TOAST many times; generous next to what a person or an agent writes at once.
 */
export const KG_LIMITS = {
  nameLength: 256,
  typeLength: 128,
  observationLength: 4096,
  observationsPerEntity: 256,
  batch: 1000,
  queryLength: 256,
  maxDepth: 5,
  maxPathDepth: 6,
  pageSize: 1000,
  neighboursCap: 1000,
  /**
   * read_graph answers the whole graph only up to this many entities and this many relations; past it the call fails
   * and points to the paginated GET …/kg/graph. An answer of 5000 entities is already megabytes of JSON for a client
   * (often a language model's context) to take in at once.
   */
  readGraphCap: 5000,
  /** search_nodes answers at most this many entities (best matches first) and the relations that touch them. */
  searchNodesCap: 1000,
  /** A shortest-path search gives up after visiting this many entities. */
  pathVisitCap: 50_000,
} as const;

/** A project's graph as the memory server's tools see it: the reference server's operations, bound to one project. */
export interface MemoryGraph {
  createEntities(entities: Entity[]): Promise<Entity[]>;
  createRelations(relations: Relation[]): Promise<Relation[]>;
  addObservations(additions: ObservationAddition[]): Promise<Array<{ entityName: string; addedObservations: string[] }>>;
  deleteEntities(names: string[]): Promise<void>;
  deleteObservations(deletions: ObservationDeletion[]): Promise<void>;
  deleteRelations(relations: Relation[]): Promise<void>;
  readGraph(): Promise<Graph>;
  searchNodes(query: string): Promise<Graph & { truncated?: true }>;
  openNodes(names: string[]): Promise<Graph>;
}

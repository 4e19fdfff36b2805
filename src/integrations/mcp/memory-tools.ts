import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { DomainError } from '../../core/errors.ts';
import { KG_LIMITS, type MemoryGraph } from '../../core/knowledge-graph-model.ts';
import { entitySchema, kgBatch as batch, kgName as name, kgQuery, observationAdditionSchema, observationDeletionSchema, relationSchema } from '../../core/knowledge-graph-schemas.ts';

// The reference MCP memory server's tools (@modelcontextprotocol/server-memory): the same names, argument shapes,
// annotations and answers (text content with the JSON, and the same structured content), so a client configured for
// that server can point at a project's durable, shared graph instead. Only bounds are added (KG_LIMITS).

/** How the tools reach a graph: reads ask for `read`, writes for `write` (the caller may refuse, e.g. for a viewer). */
export type GraphFor = (access: 'read' | 'write') => Promise<MemoryGraph>;

const EntitySchema = entitySchema;
const RelationSchema = relationSchema;
// Answers are described as the reference describes them, plain strings: they come from our own store, already within
// the bounds, and the SDK checks every answer against its output schema (bounds and patterns on thousands of strings
// cost a search_nodes answer milliseconds for nothing).
const EntityOut = z.object({ name: z.string(), entityType: z.string(), observations: z.array(z.string()) });
const RelationOut = z.object({ from: z.string(), to: z.string(), relationType: z.string() });
const graphShape = { entities: z.array(EntityOut), relations: z.array(RelationOut) };
const searchShape = { ...graphShape, truncated: z.literal(true).optional().describe(`set when more than ${KG_LIMITS.searchNodesCap} entities match: the best matches are answered; narrow the query`) };
const doneShape = { success: z.boolean(), message: z.string() };

const writes = { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false };
const deletes = { readOnlyHint: false, destructiveHint: true, idempotentHint: true, openWorldHint: false };
const reads = { readOnlyHint: true, destructiveHint: false, idempotentHint: true, openWorldHint: false };

/** The reference's answer: text content with the JSON (compact here: the same value, a third fewer bytes to send and parse) and structured content. */
function answer<T extends Record<string, unknown>>(structured: T, text = JSON.stringify(Object.values(structured).length === 1 ? Object.values(structured)[0] : structured)) {
  return { content: [{ type: 'text' as const, text }], structuredContent: structured };
}
const done = (message: string) => answer({ success: true, message }, message);

export const MEMORY_TOOL_NAMES = [
  'create_entities',
  'create_relations',
  'add_observations',
  'delete_entities',
  'delete_observations',
  'delete_relations',
  'read_graph',
  'search_nodes',
  'open_nodes',
] as const;

/**
 * Domain errors (an entity not found, a role too weak) reach the client as tool errors with their message; anything
 * else is reported to `onUnexpected` and the client gets a message that says nothing of the internals.
 */
function guarded(graph: MemoryGraph, onUnexpected: (err: unknown) => void): MemoryGraph {
  const wrap =
    <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      try {
        return await fn(...args);
      } catch (err) {
        if (err instanceof DomainError) throw err;
        onUnexpected(err);
        throw new Error('the knowledge graph could not do this right now; try again');
      }
    };
  return Object.fromEntries(Object.entries(graph).map(([k, fn]) => [k, wrap(fn as (...a: unknown[]) => Promise<unknown>)])) as unknown as MemoryGraph;
}

export function registerMemoryTools(server: McpServer, accessGraph: GraphFor, opts: { onUnexpected?: (err: unknown) => void } = {}): void {
  const onUnexpected = opts.onUnexpected ?? (() => undefined);
  const graphFor = async (access: 'read' | 'write') => guarded(await accessGraph(access), onUnexpected);
  server.registerTool(
    'create_entities',
    { title: 'Create Entities', description: 'Create multiple new entities in the knowledge graph', inputSchema: { entities: batch(EntitySchema) }, outputSchema: { entities: z.array(EntityOut) }, annotations: writes },
    async ({ entities }) => answer({ entities: await (await graphFor('write')).createEntities(entities) }),
  );
  server.registerTool(
    'create_relations',
    {
      title: 'Create Relations',
      description: 'Create multiple new relations between entities in the knowledge graph. Relations should be in active voice',
      inputSchema: { relations: batch(RelationSchema) },
      outputSchema: { relations: z.array(RelationOut) },
      annotations: writes,
    },
    async ({ relations }) => answer({ relations: await (await graphFor('write')).createRelations(relations) }),
  );
  server.registerTool(
    'add_observations',
    {
      title: 'Add Observations',
      description: 'Add new observations to existing entities in the knowledge graph',
      inputSchema: {
        observations: batch(observationAdditionSchema),
      },
      outputSchema: { results: z.array(z.object({ entityName: z.string(), addedObservations: z.array(z.string()) })) },
      annotations: writes,
    },
    async ({ observations }) => answer({ results: await (await graphFor('write')).addObservations(observations) }),
  );
  server.registerTool(
    'delete_entities',
    {
      title: 'Delete Entities',
      description: 'Delete multiple entities and their associated relations from the knowledge graph',
      inputSchema: { entityNames: batch(name).describe('An array of entity names to delete') },
      outputSchema: doneShape,
      annotations: deletes,
    },
    async ({ entityNames }) => {
      await (await graphFor('write')).deleteEntities(entityNames);
      return done('Entities deleted successfully');
    },
  );
  server.registerTool(
    'delete_observations',
    {
      title: 'Delete Observations',
      description: 'Delete specific observations from entities in the knowledge graph',
      inputSchema: {
        deletions: batch(observationDeletionSchema),
      },
      outputSchema: doneShape,
      annotations: deletes,
    },
    async ({ deletions }) => {
      await (await graphFor('write')).deleteObservations(deletions);
      return done('Observations deleted successfully');
    },
  );
  server.registerTool(
    'delete_relations',
    {
      title: 'Delete Relations',
      description: 'Delete multiple relations from the knowledge graph',
      inputSchema: { relations: batch(RelationSchema).describe('An array of relations to delete') },
      outputSchema: doneShape,
      annotations: deletes,
    },
    async ({ relations }) => {
      await (await graphFor('write')).deleteRelations(relations);
      return done('Relations deleted successfully');
    },
  );
  server.registerTool(
    'read_graph',
    {
      title: 'Read Graph',
      description: `Read the entire knowledge graph (up to ${KG_LIMITS.readGraphCap} entities and ${KG_LIMITS.readGraphCap} relations; a larger graph is an error that says how to page through it)`,
      inputSchema: {},
      outputSchema: graphShape,
      annotations: reads,
    },
    async () => answer({ ...(await (await graphFor('read')).readGraph()) }),
  );
  server.registerTool(
    'search_nodes',
    {
      title: 'Search Nodes',
      description: 'Search for nodes in the knowledge graph based on a query',
      inputSchema: { query: kgQuery.describe('The search query to match against entity names, types, and observation content') },
      outputSchema: searchShape,
      annotations: reads,
    },
    async ({ query }) => answer({ ...(await (await graphFor('read')).searchNodes(query)) }),
  );
  server.registerTool(
    'open_nodes',
    {
      title: 'Open Nodes',
      description: 'Open specific nodes in the knowledge graph by their names',
      inputSchema: { names: batch(name).describe('An array of entity names to retrieve') },
      outputSchema: graphShape,
      annotations: reads,
    },
    async ({ names }) => answer({ ...(await (await graphFor('read')).openNodes(names)) }),
  );
}

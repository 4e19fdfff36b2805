import Router from '@koa/router';
import { z } from 'zod';
import type { KnowledgeGraph } from '../../core/knowledge-graph.ts';
import { KG_LIMITS } from '../../core/knowledge-graph-model.ts';
import { entitySchema, kgBatch, kgName, kgQuery, kgType, observationAdditionSchema, observationDeletionSchema, relationSchema } from '../../core/knowledge-graph-schemas.ts';
import type { ProjectService } from '../../core/projects.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';

// A project's knowledge graph over REST. Access is checked before the input, so a stranger learns nothing (404).
// Members of any role read; writing needs the member role. Batch writes are
// idempotent as in the reference memory server: creating what exists answers nothing new, deleting what is gone is fine.

const entitiesBody = z.strictObject({ entities: kgBatch(entitySchema.strict()) });
const relationsBody = z.strictObject({ relations: kgBatch(relationSchema.strict()) });
const observationsBody = z.strictObject({ observations: kgBatch(observationAdditionSchema.strict()) });
const deleteEntitiesBody = z.strictObject({ entityNames: kgBatch(kgName) });
const deleteObservationsBody = z.strictObject({ deletions: kgBatch(observationDeletionSchema.strict()) });

const int = (min: number, max: number, fallback: number) => z.coerce.number().int().min(min).max(max).default(fallback);
const searchQuery = z.object({ q: kgQuery.min(1), limit: int(1, 100, 20) });
/** Repeated parameters (`names=a&names=b`): a name may itself hold a comma. */
const nodesQuery = z.object({ names: z.union([kgName, kgBatch(kgName)]).transform((n) => (Array.isArray(n) ? n : [n])) });
const neighboursQuery = z.object({ depth: int(1, KG_LIMITS.maxDepth, 1), relationType: kgType.optional(), limit: int(1, KG_LIMITS.neighboursCap, 200) });
const pathQuery = z.object({ from: kgName, to: kgName, maxDepth: int(1, KG_LIMITS.maxPathDepth, 4), relationType: kgType.optional() });
const graphQuery = z.object({ limit: int(1, KG_LIMITS.pageSize, 100), cursor: z.string().max(100).optional() });

const graphSchema = z.object({ entities: z.array(entitySchema), relations: z.array(relationSchema) });
const projectParams = z.object({ id: z.uuid() });
const base = '/v1/projects/{id}/kg';
const op = (o: Omit<ApiOperation, 'tags' | 'auth' | 'params'> & { params?: z.ZodObject }): ApiOperation => ({ tags: ['knowledge graph'], auth: 'bearer', params: projectParams, problems: [400, 401, 403, 404, 422, 429], ...o });

export const knowledgeGraphOperations: ApiOperation[] = [
  op({ method: 'post', path: `${base}/entities`, operationId: 'createKgEntities', summary: 'Create entities (those that exist are left as they are)', body: entitiesBody, example: { entities: [{ name: 'alice', entityType: 'person', observations: ['likes tea'] }] }, responses: { 200: { description: 'the entities that were new', schema: z.object({ entities: z.array(entitySchema) }) } } }),
  op({ method: 'post', path: `${base}/entities/delete`, operationId: 'deleteKgEntities', summary: 'Delete entities and the relations that name them', body: deleteEntitiesBody, example: { entityNames: ['alice'] }, responses: { 204: { description: 'deleted' } } }),
  op({ method: 'delete', path: `${base}/entities/{name}`, operationId: 'deleteKgEntity', summary: 'Delete one entity and the relations that name it', params: projectParams.extend({ name: kgName }), responses: { 204: { description: 'deleted' } } }),
  op({ method: 'post', path: `${base}/relations`, operationId: 'createKgRelations', summary: 'Create relations (those that exist are left as they are)', body: relationsBody, example: { relations: [{ from: 'alice', to: 'acme', relationType: 'works_at' }] }, responses: { 200: { description: 'the relations that were new', schema: z.object({ relations: z.array(relationSchema) }) } } }),
  op({ method: 'post', path: `${base}/relations/delete`, operationId: 'deleteKgRelations', summary: 'Delete relations', body: relationsBody, example: { relations: [{ from: 'alice', to: 'acme', relationType: 'works_at' }] }, responses: { 204: { description: 'deleted' } } }),
  op({ method: 'post', path: `${base}/observations`, operationId: 'addKgObservations', summary: 'Add observations to existing entities (all or nothing)', body: observationsBody, example: { observations: [{ entityName: 'alice', contents: ['speaks Dutch'] }] }, responses: { 200: { description: 'what each entity gained', schema: z.object({ results: z.array(z.object({ entityName: z.string(), addedObservations: z.array(z.string()) })) }) } } }),
  op({ method: 'post', path: `${base}/observations/delete`, operationId: 'deleteKgObservations', summary: 'Delete observations from entities', body: deleteObservationsBody, example: { deletions: [{ entityName: 'alice', observations: ['likes tea'] }] }, responses: { 204: { description: 'deleted' } } }),
  op({ method: 'get', path: `${base}/search`, operationId: 'searchKg', summary: 'Full-text search over names, types and observations, best first', query: searchQuery, responses: { 200: { description: 'matching entities with their rank', schema: z.object({ items: z.array(entitySchema.extend({ rank: z.number() })) }) } } }),
  op({ method: 'get', path: `${base}/nodes`, operationId: 'openKgNodes', summary: 'Entities by name, with the relations that touch them', query: nodesQuery, responses: { 200: { description: 'the entities found', schema: graphSchema } } }),
  op({ method: 'get', path: `${base}/entities/{name}/neighbours`, operationId: 'kgNeighbours', summary: 'Entities within depth relations of one (both directions)', params: projectParams.extend({ name: kgName }), query: neighboursQuery, responses: { 200: { description: 'the neighbourhood', schema: z.object({ entities: z.array(entitySchema.extend({ depth: z.number() })), relations: z.array(relationSchema), truncated: z.boolean() }) } } }),
  op({ method: 'get', path: `${base}/path`, operationId: 'kgPath', summary: 'A shortest path between two entities, at most maxDepth steps', query: pathQuery, responses: { 200: { description: 'the path, or names: null when there is none within the bound', schema: z.object({ from: z.string(), to: z.string(), names: z.array(z.string()).nullable(), relations: z.array(relationSchema) }) } } }),
  op({ method: 'get', path: `${base}/graph`, operationId: 'readKgGraph', summary: 'The whole graph, a page at a time', description: 'Entities and relations each in creation order; follow `nextCursor` until it is null. The way to read a graph too large for the read_graph memory tool.', query: graphQuery, responses: { 200: { description: 'one page', schema: graphSchema.extend({ nextCursor: z.string().nullable() }) } } }),
];

type Access = 'read' | 'write';

export function knowledgeGraphRoutes(deps: { kg: KnowledgeGraph; projects: ProjectService }) {
  const router = new Router<AppState>({ prefix: '/v1/projects/:id/kg' });
  const { kg, projects } = deps;

  /** The project's id once the caller may read it (any member) or write it (member role and up). */
  async function project(ctx: { state: AppState; params: Record<string, string | undefined> }, access: Access): Promise<string> {
    const p = await projects.requireRole(ctx.state.user.id, ctx.params.id!, access === 'write' ? 'member' : 'viewer');
    return p.id;
  }

  router.post('/entities', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { entities } = entitiesBody.parse(ctx.request.body);
    ctx.body = { entities: await kg.createEntities(projectId, entities) };
  });

  router.post('/entities/delete', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { entityNames } = deleteEntitiesBody.parse(ctx.request.body);
    await kg.deleteEntities(projectId, entityNames);
    ctx.status = 204;
  });

  router.delete('/entities/:name', async (ctx) => {
    const projectId = await project(ctx, 'write');
    await kg.deleteEntities(projectId, [kgName.parse(ctx.params.name)]);
    ctx.status = 204;
  });

  router.post('/relations', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { relations } = relationsBody.parse(ctx.request.body);
    ctx.body = { relations: await kg.createRelations(projectId, relations) };
  });

  router.post('/relations/delete', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { relations } = relationsBody.parse(ctx.request.body);
    await kg.deleteRelations(projectId, relations);
    ctx.status = 204;
  });

  router.post('/observations', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { observations } = observationsBody.parse(ctx.request.body);
    ctx.body = { results: await kg.addObservations(projectId, observations) };
  });

  router.post('/observations/delete', async (ctx) => {
    const projectId = await project(ctx, 'write');
    const { deletions } = deleteObservationsBody.parse(ctx.request.body);
    await kg.deleteObservations(projectId, deletions);
    ctx.status = 204;
  });

  router.get('/search', async (ctx) => {
    const projectId = await project(ctx, 'read');
    const { q, limit } = searchQuery.parse(ctx.query);
    ctx.body = { items: await kg.search(projectId, q, { limit }) };
  });

  router.get('/nodes', async (ctx) => {
    const projectId = await project(ctx, 'read');
    ctx.body = await kg.openNodes(projectId, nodesQuery.parse(ctx.query).names);
  });

  router.get('/entities/:name/neighbours', async (ctx) => {
    const projectId = await project(ctx, 'read');
    const name = kgName.parse(ctx.params.name);
    const { depth, relationType, limit } = neighboursQuery.parse(ctx.query);
    ctx.body = await kg.neighbours(projectId, name, { depth, limit, ...(relationType !== undefined && { relationType }) });
  });

  router.get('/path', async (ctx) => {
    const projectId = await project(ctx, 'read');
    const { from, to, maxDepth, relationType } = pathQuery.parse(ctx.query);
    ctx.body = await kg.path(projectId, from, to, { maxDepth, ...(relationType !== undefined && { relationType }) });
  });

  router.get('/graph', async (ctx) => {
    const projectId = await project(ctx, 'read');
    const { limit, cursor } = graphQuery.parse(ctx.query);
    ctx.body = await kg.graphPage(projectId, { limit, ...(cursor !== undefined && { cursor }) });
  });

  return router;
}

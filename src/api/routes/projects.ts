import Router from '@koa/router';
import { z } from 'zod';
import type { ProjectService } from '../../core/projects.ts';
import { PROJECT_ROLES } from '../../core/roles.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { itemsOf, memberSchema, projectSchema } from '../response-schemas.ts';

const createBody = z.strictObject({ name: z.string().trim().min(1).max(200), description: z.string().max(2000).optional() });
const patchBody = z.strictObject({ name: z.string().trim().min(1).max(200).optional(), description: z.string().max(2000).nullable().optional() });

const memberBody = z.strictObject({ login: z.string().min(1).max(64), role: z.enum(PROJECT_ROLES).default('member') });
const roleBody = z.strictObject({ role: z.enum(PROJECT_ROLES) });

export function projectRoutes(deps: { projects: ProjectService }) {
  const router = new Router<AppState>({ prefix: '/v1/projects' });
  const { projects } = deps;

  router.post('/', async (ctx) => {
    const body = createBody.parse(ctx.request.body);
    ctx.status = 201;
    ctx.body = await projects.create(ctx.state.user.id, body);
    ctx.set('Location', `/v1/projects/${(ctx.body as { id: string }).id}`);
  });

  router.get('/', async (ctx) => {
    ctx.body = { items: await projects.list(ctx.state.user.id) };
  });

  router.get('/:id', async (ctx) => {
    ctx.body = await projects.get(ctx.state.user.id, ctx.params.id!);
  });

  router.patch('/:id', async (ctx) => {
    ctx.body = await projects.update(ctx.state.user.id, ctx.params.id!, patchBody.parse(ctx.request.body));
  });

  router.get('/:id/members', async (ctx) => {
    ctx.body = { items: await projects.listMembers(ctx.state.user.id, ctx.params.id!) };
  });

  router.post('/:id/members', async (ctx) => {
    const { login, role } = memberBody.parse(ctx.request.body);
    ctx.status = 201;
    ctx.body = await projects.setMember(ctx.state.user.id, ctx.params.id!, login, role);
  });

  router.patch('/:id/members/:login', async (ctx) => {
    const { role } = roleBody.parse(ctx.request.body);
    ctx.body = await projects.setMember(ctx.state.user.id, ctx.params.id!, ctx.params.login!, role);
  });

  router.delete('/:id/members/:login', async (ctx) => {
    await projects.removeMember(ctx.state.user.id, ctx.params.id!, ctx.params.login!);
    ctx.status = 204;
  });

  router.delete('/:id', async (ctx) => {
    await projects.remove(ctx.state.user.id, ctx.params.id!);
    ctx.status = 204;
  });

  return router;
}

const projectParams = z.object({ id: z.uuid() });
const memberParams = z.object({ id: z.uuid(), login: z.string() });
const problemsOfProject = [403, 404];

export const projectOperations: ApiOperation[] = [
  {
    method: 'post', path: '/v1/projects', operationId: 'createProject', summary: 'Create a project (you become its owner)', tags: ['projects'], auth: 'bearer',
    body: createBody, example: { name: 'scans', description: 'nightly security scans' },
    responses: { 201: { description: 'the project', schema: projectSchema } },
  },
  { method: 'get', path: '/v1/projects', operationId: 'listProjects', summary: 'Projects you are a member of', tags: ['projects'], auth: 'bearer', responses: { 200: { description: 'your projects', schema: itemsOf(projectSchema) } } },
  { method: 'get', path: '/v1/projects/{id}', operationId: 'getProject', summary: 'One project', tags: ['projects'], auth: 'bearer', params: projectParams, responses: { 200: { description: 'the project', schema: projectSchema } }, problems: [404] },
  {
    method: 'patch', path: '/v1/projects/{id}', operationId: 'updateProject', summary: 'Rename or describe a project (admin)', tags: ['projects'], auth: 'bearer', params: projectParams,
    body: patchBody, example: { description: null }, responses: { 200: { description: 'the project', schema: projectSchema } }, problems: problemsOfProject,
  },
  { method: 'get', path: '/v1/projects/{id}/members', operationId: 'listMembers', summary: "A project's members and their roles", tags: ['projects'], auth: 'bearer', params: projectParams, responses: { 200: { description: 'the members', schema: itemsOf(memberSchema) } }, problems: [404] },
  {
    method: 'post', path: '/v1/projects/{id}/members', operationId: 'addMember', summary: 'Add a user to a project (admin)', tags: ['projects'], auth: 'bearer', params: projectParams,
    body: memberBody, example: { login: 'bob', role: 'viewer' }, responses: { 201: { description: 'the member', schema: memberSchema } }, problems: [...problemsOfProject, 409],
  },
  {
    method: 'patch', path: '/v1/projects/{id}/members/{login}', operationId: 'setMemberRole', summary: "Change a member's role (owner)", tags: ['projects'], auth: 'bearer', params: memberParams,
    body: roleBody, example: { role: 'admin' }, responses: { 200: { description: 'the member', schema: memberSchema } }, problems: [...problemsOfProject, 409],
  },
  { method: 'delete', path: '/v1/projects/{id}/members/{login}', operationId: 'removeMember', summary: 'Remove a member', tags: ['projects'], auth: 'bearer', params: memberParams, responses: { 204: { description: 'removed' } }, problems: [...problemsOfProject, 409] },
  { method: 'delete', path: '/v1/projects/{id}', operationId: 'deleteProject', summary: 'Delete a project (owner)', tags: ['projects'], auth: 'bearer', params: projectParams, responses: { 204: { description: 'deleted' } }, problems: [...problemsOfProject, 409] },
];

import Router from '@koa/router';
import { z } from 'zod';
import type { ProjectService } from '../../core/projects.ts';
import { PROJECT_ROLES } from '../../core/roles.ts';
import type { AppState } from '../authenticate.ts';

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

import Router from '@koa/router';
import { z } from 'zod';
import { AUDIT_ACTIONS, type AuditLog } from '../../core/audit-log.ts';
import { ForbiddenError, isUuid, type ProjectService } from '../../core/projects.ts';
import type { UserDirectory } from '../../core/users.ts';
import type { ApiOperation } from '../api-operation.ts';
import type { AppState } from '../authenticate.ts';
import { boundedText } from '../schemas.ts';

const auditQuery = z.object({
  /** A login, or a user id. */
  actor: boundedText(100).min(1).optional(),
  action: z.enum(AUDIT_ACTIONS).optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().regex(/^[1-9]\d{0,17}$/, 'not a cursor this API returned').optional(),
});
const projectParams = z.object({ id: z.string() });

const auditEntry = z.object({
  id: z.string(),
  at: z.string(),
  actor: z.object({ kind: z.string(), userId: z.string().nullable(), login: z.string().nullable(), keyId: z.string().nullable() }),
  action: z.string(),
  projectId: z.string().nullable(),
  target: z.object({ type: z.string(), id: z.string() }).nullable(),
  detail: z.record(z.string(), z.unknown()),
  requestId: z.string().nullable(),
  ip: z.string().nullable(),
});
const auditPage = z.object({ items: z.array(auditEntry), nextCursor: z.string().nullable() });

export const auditOperations: ApiOperation[] = [
  {
    method: 'get',
    path: '/v1/projects/{id}/audit',
    operationId: 'listProjectAudit',
    summary: "The project's audit trail, newest first (project admins and owners)",
    tags: ['audit'],
    auth: 'bearer',
    params: projectParams,
    query: auditQuery,
    responses: { 200: { description: 'One page; pass nextCursor as cursor for the next', schema: auditPage } },
    problems: [400, 401, 403, 404, 429],
  },
  {
    method: 'get',
    path: '/v1/audit',
    operationId: 'listAudit',
    summary: 'The whole audit trail, newest first (platform admins)',
    tags: ['audit'],
    auth: 'bearer',
    query: auditQuery,
    responses: { 200: { description: 'One page; pass nextCursor as cursor for the next', schema: auditPage } },
    problems: [400, 401, 403, 429],
  },
];

function filters(q: z.infer<typeof auditQuery>) {
  return {
    limit: q.limit,
    ...(q.actor !== undefined && (isUuid(q.actor) ? { actorUserId: q.actor } : { actorLogin: q.actor })),
    ...(q.action !== undefined && { action: q.action }),
    ...(q.cursor !== undefined && { before: q.cursor }),
  };
}

export function auditRoutes(deps: { audit: AuditLog; projects: ProjectService; users: UserDirectory }) {
  const router = new Router<AppState>({ prefix: '/v1' });

  router.get('/projects/:id/audit', async (ctx) => {
    const q = auditQuery.parse(ctx.query);
    const project = await deps.projects.requireRole(ctx.state.user.id, ctx.params.id!, 'admin');
    const page = await deps.audit.list({ ...filters(q), projectId: project.id });
    ctx.body = { items: page.entries, nextCursor: page.nextCursor };
  });

  router.get('/audit', async (ctx) => {
    const q = auditQuery.parse(ctx.query);
    if (!(await deps.users.actor(ctx.state.user)).isAdmin) throw new ForbiddenError('the platform audit trail is for platform admins');
    const page = await deps.audit.list(filters(q));
    ctx.body = { items: page.entries, nextCursor: page.nextCursor };
  });

  return router;
}

import type { Db } from '../db/create-db.ts';
import type { CallerScopes, RecordAudit } from './caller-scope.ts';
import { ConflictError, DomainError, InvalidRequestError, NotFoundError } from './errors.ts';
import { roleAtLeast, type ProjectRole } from './roles.ts';

export interface Project {
  id: string;
  name: string;
  description: string | null;
  role: ProjectRole;
  createdAt: string;
  updatedAt: string;
}

export interface Member {
  login: string;
  role: ProjectRole;
}

const columns = ['p.id', 'p.name', 'p.description', 'm.role', 'p.created_at', 'p.updated_at'] as const;

function toProject(row: { id: string; name: string; description: string | null; role: ProjectRole; created_at: Date; updated_at: Date }): Project {
  return {
    id: row.id,
    name: row.name,
    description: row.description,
    role: row.role,
    createdAt: row.created_at.toISOString(),
    updatedAt: row.updated_at.toISOString(),
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (s: string) => UUID.test(s);

export class ForbiddenError extends DomainError {
  constructor(message: string) {
    super('Forbidden', message);
  }
}

/** Locks the owner rows, so two concurrent demotions cannot both count the other as the remaining owner. */
async function countOwners(db: Db, projectId: string): Promise<number> {
  const rows = await db.selectFrom('project_members').select('user_id').where('project_id', '=', projectId).where('role', '=', 'owner').forUpdate().execute();
  return rows.length;
}

/**
 * `scopes` narrows what a caller holding an API key sees (one project, a capped role); `recordAudit` writes the
 * trail of project, member and role changes. Both are optional so tools outside a request can build the service.
 */
export function createProjectService(db: Db, opts: { scopes?: CallerScopes; recordAudit?: RecordAudit } = {}) {
  const { scopes } = opts;
  const recordAudit: RecordAudit = opts.recordAudit ?? (async () => {});
  const capped = (p: Project): Project => (scopes ? { ...p, role: scopes.capRole(p.role) } : p);

  /** A project the user is not a member of (or their key is not bound to) does not exist for them: 404, never 403. */
  async function get(userId: string, projectId: string): Promise<Project> {
    if (!isUuid(projectId) || (scopes && !scopes.allowsProject(projectId))) throw new NotFoundError('Project', projectId);
    const row = await db
      .selectFrom('projects as p')
      .innerJoin('project_members as m', 'm.project_id', 'p.id')
      .select(columns)
      .where('p.id', '=', projectId)
      .where('m.user_id', '=', userId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Project', projectId);
    return capped(toProject(row));
  }

  /** Members below `min` know the project exists, so they get 403; everyone else 404. */
  async function requireRole(userId: string, projectId: string, min: ProjectRole): Promise<Project> {
    const project = await get(userId, projectId);
    if (!roleAtLeast(project.role, min)) throw new ForbiddenError(`this needs the ${min} role in the project (yours: ${project.role})`);
    return project;
  }

  async function findMember(trx: Db, projectId: string, login: string) {
    return trx
      .selectFrom('project_members as m')
      .innerJoin('users as u', 'u.id', 'm.user_id')
      .select(['m.user_id', 'm.role', 'u.login'])
      .where('m.project_id', '=', projectId)
      .where('u.login', '=', login)
      .forUpdate()
      .executeTakeFirst();
  }

  return {
    get,
    requireRole,

    /** Users whose private registry servers this project may use: its members. */
    async memberIds(projectId: string): Promise<string[]> {
      const rows = await db.selectFrom('project_members').select('user_id').where('project_id', '=', projectId).execute();
      return rows.map((r) => r.user_id);
    },

    async create(userId: string, input: { name: string; description?: string }): Promise<Project> {
      scopes?.requireUnboundKey('create projects');
      const id = await db.transaction().execute(async (trx) => {
        const p = await trx
          .insertInto('projects')
          .values({ name: input.name, description: input.description ?? null, created_by: userId })
          .returning('id')
          .executeTakeFirstOrThrow();
        await trx.insertInto('project_members').values({ project_id: p.id, user_id: userId, role: 'owner' }).execute();
        await recordAudit({ action: 'project.create', projectId: p.id, target: { type: 'project', id: p.id }, detail: { name: input.name } }, trx);
        return p.id;
      });
      return get(userId, id);
    },

    async list(userId: string): Promise<Project[]> {
      let q = db.selectFrom('projects as p').innerJoin('project_members as m', 'm.project_id', 'p.id').select(columns).where('m.user_id', '=', userId);
      const bound = scopes?.boundProject();
      if (bound) q = q.where('p.id', '=', bound);
      const rows = await q.orderBy('p.created_at', 'desc').execute();
      return rows.map((r) => capped(toProject(r)));
    },

    async update(userId: string, projectId: string, patch: { name?: string; description?: string | null }): Promise<Project> {
      await requireRole(userId, projectId, 'admin');
      await db.transaction().execute(async (trx) => {
        await trx
          .updateTable('projects')
          .set({ ...(patch.name !== undefined && { name: patch.name }), ...(patch.description !== undefined && { description: patch.description }), updated_at: new Date() })
          .where('id', '=', projectId)
          .execute();
        await recordAudit({ action: 'project.update', projectId, target: { type: 'project', id: projectId }, detail: { ...patch } }, trx);
      });
      return get(userId, projectId);
    },

    /** Refused while tasks still run: their workflows would go on writing for rows that are gone. */
    async remove(userId: string, projectId: string): Promise<void> {
      await requireRole(userId, projectId, 'owner');
      await db.transaction().execute(async (trx) => {
        await trx.selectFrom('projects').select('id').where('id', '=', projectId).forUpdate().execute();
        const active = await trx
          .selectFrom('tasks')
          .select((eb) => eb.fn.countAll<string>().as('n'))
          .where('project_id', '=', projectId)
          .where('status', 'not in', ['succeeded', 'failed', 'canceled'])
          .executeTakeFirstOrThrow();
        if (Number(active.n) > 0) {
          throw new ConflictError('ProjectHasActiveTasks', `the project still has ${active.n} unfinished task(s): cancel them or let them finish first`, { activeTasks: Number(active.n) });
        }
        await trx.deleteFrom('projects').where('id', '=', projectId).execute();
        await recordAudit({ action: 'project.delete', projectId, target: { type: 'project', id: projectId } }, trx);
      });
    },

    /**
     * Adds a member by login (the user must exist: they have signed in once), or changes an existing member's role.
     * Admins add viewers and members; granting admin or owner, and changing anyone's role, is for owners.
     */
    async setMember(userId: string, projectId: string, login: string, role: ProjectRole = 'member'): Promise<Member> {
      const actor = await requireRole(userId, projectId, 'admin');
      const user = await db.selectFrom('users').select(['id', 'login']).where('login', '=', login).executeTakeFirst();
      if (!user) throw new InvalidRequestError('UnknownUser', `no user with the login "${login}"`, { login });
      return db.transaction().execute(async (trx) => {
        const existing = await findMember(trx, projectId, login);
        const changesRole = existing !== undefined && existing.role !== role;
        if (actor.role !== 'owner' && (roleAtLeast(role, 'admin') || changesRole)) {
          throw new ForbiddenError('only an owner may grant the admin or owner role or change a member’s role');
        }
        if (existing?.role === 'owner' && role !== 'owner' && (await countOwners(trx, projectId)) <= 1) {
          throw new ConflictError('LastOwner', 'a project needs at least one owner: make someone else owner first');
        }
        await trx
          .insertInto('project_members')
          .values({ project_id: projectId, user_id: user.id, role })
          .onConflict((oc) => oc.columns(['project_id', 'user_id']).doUpdateSet({ role }))
          .execute();
        if (!existing || changesRole) {
          await recordAudit(
            {
              action: existing ? 'member.role_change' : 'member.add',
              projectId,
              target: { type: 'user', id: user.id },
              detail: existing ? { login: user.login, from: existing.role, to: role } : { login: user.login, role },
            },
            trx,
          );
        }
        return { login: user.login, role };
      });
    },

    async listMembers(userId: string, projectId: string): Promise<Member[]> {
      await get(userId, projectId);
      const rows = await db
        .selectFrom('project_members as m')
        .innerJoin('users as u', 'u.id', 'm.user_id')
        .select(['u.login', 'm.role'])
        .where('m.project_id', '=', projectId)
        .orderBy('u.login')
        .execute();
      return rows.map((r) => ({ login: r.login, role: r.role }));
    },

    /**
     * Anyone may leave; admins remove viewers and members; owners remove anyone. The last owner can neither leave
     * nor be removed, so a project is never left without an owner.
     */
    async removeMember(userId: string, projectId: string, login: string): Promise<void> {
      const actor = await get(userId, projectId);
      await db.transaction().execute(async (trx) => {
        const member = await findMember(trx, projectId, login);
        if (!member) throw new NotFoundError('Member', login);
        const leaving = member.user_id === userId;
        if (!leaving) {
          const needed: ProjectRole = roleAtLeast(member.role, 'admin') ? 'owner' : 'admin';
          if (!roleAtLeast(actor.role, needed)) throw new ForbiddenError(`removing a ${member.role} needs the ${needed} role`);
        }
        if (member.role === 'owner' && (await countOwners(trx, projectId)) <= 1) {
          throw new ConflictError('LastOwner', 'a project needs at least one owner: make someone else owner first');
        }
        await trx.deleteFrom('project_members').where('project_id', '=', projectId).where('user_id', '=', member.user_id).execute();
        await recordAudit({ action: 'member.remove', projectId, target: { type: 'user', id: member.user_id }, detail: { login: member.login, role: member.role, left: leaving } }, trx);
      });
    },
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;

import type { Db } from '../db/create-db.ts';
import { ConflictError, DomainError, InvalidRequestError, NotFoundError } from './errors.ts';

export interface Project {
  id: string;
  name: string;
  description: string | null;
  role: 'owner' | 'member';
  createdAt: string;
  updatedAt: string;
}

export interface Member {
  login: string;
  role: 'owner' | 'member';
}

const columns = ['p.id', 'p.name', 'p.description', 'm.role', 'p.created_at', 'p.updated_at'] as const;

function toProject(row: { id: string; name: string; description: string | null; role: 'owner' | 'member'; created_at: Date; updated_at: Date }): Project {
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

export function createProjectService(db: Db) {
  /** A project the user is not a member of does not exist for them: 404, never 403. */
  async function get(userId: string, projectId: string): Promise<Project> {
    if (!isUuid(projectId)) throw new NotFoundError('Project', projectId);
    const row = await db
      .selectFrom('projects as p')
      .innerJoin('project_members as m', 'm.project_id', 'p.id')
      .select(columns)
      .where('p.id', '=', projectId)
      .where('m.user_id', '=', userId)
      .executeTakeFirst();
    if (!row) throw new NotFoundError('Project', projectId);
    return toProject(row);
  }

  async function requireOwner(userId: string, projectId: string): Promise<Project> {
    const project = await get(userId, projectId);
    if (project.role !== 'owner') throw new DomainError('Forbidden', 'only the project owner may do this');
    return project;
  }

  return {
    get,
    requireOwner,

    async create(userId: string, input: { name: string; description?: string }): Promise<Project> {
      const id = await db.transaction().execute(async (trx) => {
        const p = await trx
          .insertInto('projects')
          .values({ name: input.name, description: input.description ?? null, created_by: userId })
          .returning('id')
          .executeTakeFirstOrThrow();
        await trx.insertInto('project_members').values({ project_id: p.id, user_id: userId, role: 'owner' }).execute();
        return p.id;
      });
      return get(userId, id);
    },

    async list(userId: string): Promise<Project[]> {
      const rows = await db
        .selectFrom('projects as p')
        .innerJoin('project_members as m', 'm.project_id', 'p.id')
        .select(columns)
        .where('m.user_id', '=', userId)
        .orderBy('p.created_at', 'desc')
        .execute();
      return rows.map(toProject);
    },

    async update(userId: string, projectId: string, patch: { name?: string; description?: string | null }): Promise<Project> {
      await requireOwner(userId, projectId);
      await db
        .updateTable('projects')
        .set({ ...(patch.name !== undefined && { name: patch.name }), ...(patch.description !== undefined && { description: patch.description }), updated_at: new Date() })
        .where('id', '=', projectId)
        .execute();
      return get(userId, projectId);
    },

    async remove(userId: string, projectId: string): Promise<void> {
      await requireOwner(userId, projectId);
      await db.deleteFrom('projects').where('id', '=', projectId).execute();
    },

    /** Owners add members by login (the user must exist: they have signed in once). */
    async addMember(userId: string, projectId: string, login: string, role: 'owner' | 'member' = 'member'): Promise<Member> {
      await requireOwner(userId, projectId);
      const user = await db.selectFrom('users').select(['id', 'login']).where('login', '=', login).executeTakeFirst();
      if (!user) throw new InvalidRequestError('UnknownUser', `no user with the login "${login}"`, { login });
      await db
        .insertInto('project_members')
        .values({ project_id: projectId, user_id: user.id, role })
        .onConflict((oc) => oc.columns(['project_id', 'user_id']).doUpdateSet({ role }))
        .execute();
      return { login: user.login, role };
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

    /** An owner removes a member; the last owner cannot leave a project without an owner. */
    async removeMember(userId: string, projectId: string, login: string): Promise<void> {
      await requireOwner(userId, projectId);
      await db.transaction().execute(async (trx) => {
        const member = await trx
          .selectFrom('project_members as m')
          .innerJoin('users as u', 'u.id', 'm.user_id')
          .select(['m.user_id', 'm.role'])
          .where('m.project_id', '=', projectId)
          .where('u.login', '=', login)
          .forUpdate()
          .executeTakeFirst();
        if (!member) throw new NotFoundError('Member', login);
        if (member.role === 'owner') {
          const owners = await trx.selectFrom('project_members').select((eb) => eb.fn.countAll<string>().as('n')).where('project_id', '=', projectId).where('role', '=', 'owner').executeTakeFirstOrThrow();
          if (Number(owners.n) <= 1) throw new ConflictError('LastOwner', 'a project needs at least one owner');
        }
        await trx.deleteFrom('project_members').where('project_id', '=', projectId).where('user_id', '=', member.user_id).execute();
      });
    },
  };
}

export type ProjectService = ReturnType<typeof createProjectService>;

import type { Db } from '../db/create-db.ts';

// The audit trail: who did what, to what, when. Rows are append-only (a trigger refuses UPDATE and DELETE).
// `detail` is shown to project and platform admins: it never holds a secret (no tokens, keys or sealed values),
// only names, ids and the before/after of what changed.

export const AUDIT_ACTIONS = [
  'auth.sign_in',
  'auth.identity_linked',
  'auth.logout',
  'auth.refresh_reuse_detected',
  'api_key.create',
  'api_key.revoke',
  'registry.create',
  'registry.update',
  'registry.delete',
  'registry.refresh',
  'project.create',
  'project.update',
  'project.delete',
  'member.add',
  'member.role_change',
  'member.remove',
  'space.bind',
  'space.unbind',
  'task.consent',
  'task.cancel',
  'task.retry',
  'admin.grant',
  'admin.revoke',
] as const;

export type AuditAction = (typeof AUDIT_ACTIONS)[number];

/** Who acted: a signed-in user, a user through one of their API keys, or the platform itself (CLI, reconciler). */
export interface AuditActor {
  kind: 'user' | 'api_key' | 'system';
  userId?: string;
  login?: string;
  keyId?: string;
}

export interface AuditEntryInput {
  actor: AuditActor;
  action: AuditAction;
  projectId?: string | null;
  target?: { type: string; id: string };
  detail?: Record<string, unknown>;
  requestId?: string;
  ip?: string;
}

export interface AuditEntry {
  id: string;
  at: string;
  actor: { kind: string; userId: string | null; login: string | null; keyId: string | null };
  action: string;
  projectId: string | null;
  target: { type: string; id: string } | null;
  detail: Record<string, unknown>;
  requestId: string | null;
  ip: string | null;
}

export interface AuditQuery {
  projectId?: string;
  actorUserId?: string;
  actorLogin?: string;
  action?: string;
  /** Entries older than this one (the `nextCursor` of the previous page). */
  before?: string;
  limit: number;
}

export function createAuditLog(deps: { db: Db }) {
  return {
    /** Appends one entry; pass the caller's transaction so the entry commits (or not) with the change it records. */
    async record(entry: AuditEntryInput, db: Db = deps.db): Promise<void> {
      await db
        .insertInto('audit_log')
        .values({
          actor_kind: entry.actor.kind,
          actor_user_id: entry.actor.userId ?? null,
          actor_login: entry.actor.login ?? null,
          actor_key_id: entry.actor.keyId ?? null,
          action: entry.action,
          project_id: entry.projectId ?? null,
          target_type: entry.target?.type ?? null,
          target_id: entry.target?.id ?? null,
          detail: JSON.stringify(entry.detail ?? {}),
          request_id: entry.requestId ?? null,
          ip: entry.ip ?? null,
        })
        .execute();
    },

    /** Newest first, `limit` per page; `nextCursor` is set when older entries remain. */
    async list(query: AuditQuery): Promise<{ entries: AuditEntry[]; nextCursor: string | null }> {
      let q = deps.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(query.limit + 1);
      if (query.projectId !== undefined) q = q.where('project_id', '=', query.projectId);
      if (query.actorUserId !== undefined) q = q.where('actor_user_id', '=', query.actorUserId);
      if (query.actorLogin !== undefined) q = q.where('actor_login', '=', query.actorLogin);
      if (query.action !== undefined) q = q.where('action', '=', query.action);
      if (query.before !== undefined) q = q.where('id', '<', query.before as never);
      const rows = await q.execute();
      const page = rows.slice(0, query.limit);
      return {
        entries: page.map((r) => ({
          id: String(r.id),
          at: r.at.toISOString(),
          actor: { kind: r.actor_kind, userId: r.actor_user_id, login: r.actor_login, keyId: r.actor_key_id },
          action: r.action,
          projectId: r.project_id,
          target: r.target_type !== null && r.target_id !== null ? { type: r.target_type, id: r.target_id } : null,
          detail: r.detail,
          requestId: r.request_id,
          ip: r.ip,
        })),
        nextCursor: rows.length > query.limit ? String(page[page.length - 1]!.id) : null,
      };
    },
  };
}

export type AuditLog = ReturnType<typeof createAuditLog>;

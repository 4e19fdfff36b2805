import { AsyncLocalStorage } from 'node:async_hooks';
import type { AuditActor, AuditEntryInput, AuditLog } from './audit-log.ts';
import type { Db } from '../db/create-db.ts';
import { ForbiddenError } from './projects.ts';
import { roleAtLeast, type ProjectRole } from './roles.ts';

// Who is calling, for the length of one request. Services take a user id as their first argument (so one service can
// serve the API, the CLI and the worker); what that id cannot say — that the caller came in with an API key limited to
// one project or a lower role, and which request and address to write in the audit trail — travels here instead of
// through every signature. Outside a request (CLI, worker, reconciler) there is no scope: full rights, actor `system`.

/** What an API key allows: `projectId` null means every project of its creator, `role` null means the creator's role. */
export interface KeyLimits {
  id: string;
  projectId: string | null;
  role: ProjectRole | null;
}

export interface CallerScope {
  actor: AuditActor;
  key?: KeyLimits;
  requestId?: string;
  ip?: string;
}

export function createCallerScopes() {
  const storage = new AsyncLocalStorage<CallerScope>();
  const key = () => storage.getStore()?.key;
  return {
    run<T>(scope: CallerScope, fn: () => T): T {
      return storage.run(scope, fn);
    },
    current: (): CallerScope | undefined => storage.getStore(),

    /** false when the caller's key is bound to another project. */
    allowsProject(projectId: string): boolean {
      const k = key();
      return !k?.projectId || k.projectId === projectId;
    },

    /** The caller's project to list from when their key is bound to one. */
    boundProject: (): string | undefined => key()?.projectId ?? undefined,

    /** A member's role as the caller may use it: never more than their key's role. */
    capRole(role: ProjectRole): ProjectRole {
      const cap = key()?.role;
      return cap && !roleAtLeast(cap, role) ? cap : role;
    },

    /** For acts outside projects (the registry, keys): refused through a key limited to a project or below `min`. */
    requireUnboundKey(what: string, min: ProjectRole = 'member'): void {
      const k = key();
      if (!k) return;
      if (k.projectId) throw new ForbiddenError(`an API key bound to a project cannot ${what}`);
      if (k.role && !roleAtLeast(k.role, min)) throw new ForbiddenError(`an API key with the ${k.role} role cannot ${what}`);
    },

    /** Platform admin rights pass through a key only when the key is unlimited. */
    keepsAdmin(): boolean {
      const k = key();
      return !k || (!k.projectId && (k.role === null || k.role === 'owner'));
    },
  };
}

export type CallerScopes = ReturnType<typeof createCallerScopes>;

export type AuditRecord = Omit<AuditEntryInput, 'actor' | 'requestId' | 'ip'>;

/** Records an entry for the current caller; pass the transaction of the change it records. */
export type RecordAudit = (entry: AuditRecord, db?: Db) => Promise<void>;

export function createAuditRecorder(deps: { audit: AuditLog; scopes: CallerScopes }): RecordAudit {
  return async (entry, db) => {
    const scope = deps.scopes.current();
    await deps.audit.record(
      { ...entry, actor: scope?.actor ?? { kind: 'system' }, ...(scope?.requestId && { requestId: scope.requestId }), ...(scope?.ip && { ip: scope.ip }) },
      db,
    );
  };
}

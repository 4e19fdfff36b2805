import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/create-db.ts';
import * as repo from './api-keys-repository.ts';
import { InvalidTokenError } from './auth-tokens.ts';
import type { CallerScopes, KeyLimits, RecordAudit } from './caller-scope.ts';
import { ConflictError, InvalidRequestError, NotFoundError } from './errors.ts';
import { ForbiddenError, type ProjectService } from './projects.ts';
import { roleAtLeast, type ProjectRole } from './roles.ts';

// API keys for scripts and CI: `orch_<id>_<secret>`. The id finds the row; the secret (32 random bytes) is kept only
// as its SHA-256 and compared in constant time. A key acts as its creator, within its limits: one project or all of
// the creator's, and a role that caps (never raises) the creator's role in each project.

export const API_KEY_PREFIX = 'orch_';
const KEY_FORMAT = /^orch_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$/;
// How stale `lastUsedAt` may get: one write per key per minute at most.
const LAST_USED_RESOLUTION_SECONDS = 60;

export interface ApiKey {
  id: string;
  name: string;
  projectId: string | null;
  role: ProjectRole | null;
  createdAt: string;
  expiresAt: string | null;
  lastUsedAt: string | null;
  revokedAt: string | null;
}

export interface NewApiKey {
  name: string;
  projectId?: string;
  role?: ProjectRole;
  expiresAt?: Date;
}

const hashOf = (secret: string) => createHash('sha256').update(secret).digest();

export const looksLikeApiKey = (token: string) => token.startsWith(API_KEY_PREFIX);

function toKey(r: repo.ApiKeyRow): ApiKey {
  return {
    id: r.id,
    name: r.name,
    projectId: r.project_id,
    role: r.role,
    createdAt: r.created_at.toISOString(),
    expiresAt: r.expires_at?.toISOString() ?? null,
    lastUsedAt: r.last_used_at?.toISOString() ?? null,
    revokedAt: r.revoked_at?.toISOString() ?? null,
  };
}

export function createApiKeys(deps: {
  db: Db;
  projects: ProjectService;
  scopes: CallerScopes;
  recordAudit: RecordAudit;
  maxPerUser: number;
  maxTtlMs: number;
  now?: () => number;
}) {
  const { db } = deps;
  const now = deps.now ?? Date.now;

  return {
    /** Creates a key; the returned `key` is the only time its secret is ever seen. */
    async create(userId: string, input: NewApiKey): Promise<ApiKey & { key: string }> {
      // A key cannot mint keys: a leaked key must not outlive its own expiry or revocation.
      if (deps.scopes.current()?.key) throw new ForbiddenError('API keys cannot create API keys: sign in as a person');
      if (input.projectId) {
        const project = await deps.projects.get(userId, input.projectId);
        if (input.role && !roleAtLeast(project.role, input.role)) {
          throw new ForbiddenError(`a key cannot have more than your role in the project (${project.role})`);
        }
      }
      const latest = now() + deps.maxTtlMs;
      const expiresAt = input.expiresAt ?? new Date(latest);
      if (expiresAt.getTime() <= now()) throw new InvalidRequestError('InvalidExpiry', 'expiresAt must be in the future');
      if (expiresAt.getTime() > latest) {
        throw new InvalidRequestError('InvalidExpiry', `expiresAt may be at most ${Math.floor(deps.maxTtlMs / 3_600_000)} hours from now`, { latest: new Date(latest).toISOString() });
      }
      const id = randomBytes(8).toString('hex');
      const secret = randomBytes(32).toString('base64url');
      const row = await db.transaction().execute(async (trx) => {
        if ((await repo.countUsableKeysLocked(trx, userId)) >= deps.maxPerUser) {
          throw new ConflictError('TooManyApiKeys', `you have ${deps.maxPerUser} active API keys, the most allowed: revoke one first`, { max: deps.maxPerUser });
        }
        const inserted = await repo.insertKey(trx, {
          id,
          user_id: userId,
          name: input.name,
          project_id: input.projectId ?? null,
          role: input.role ?? null,
          expires_at: expiresAt,
          secret_hash: hashOf(secret),
        });
        await deps.recordAudit(
          {
            action: 'api_key.create',
            projectId: inserted.project_id,
            target: { type: 'api_key', id },
            detail: { name: inserted.name, projectId: inserted.project_id, role: inserted.role, expiresAt: expiresAt.toISOString() },
          },
          trx,
        );
        return inserted;
      });
      return { ...toKey(row), key: `${API_KEY_PREFIX}${id}_${secret}` };
    },

    async list(userId: string): Promise<ApiKey[]> {
      return (await repo.listKeys(db, userId)).map(toKey);
    },

    /** Takes effect at once: every check reads the row. A key may revoke itself, not its siblings. */
    async revoke(userId: string, id: string): Promise<void> {
      const own = deps.scopes.current()?.key;
      if (own && own.id !== id) throw new ForbiddenError('an API key may revoke only itself: sign in as a person to manage keys');
      await db.transaction().execute(async (trx) => {
        const row = await repo.revokeKey(trx, userId, id);
        if (!row) throw new NotFoundError('ApiKey', id);
        await deps.recordAudit({ action: 'api_key.revoke', projectId: row.project_id, target: { type: 'api_key', id }, detail: { name: row.name } }, trx);
      });
    },

    /** The bearer check for `orch_…` tokens. Reasons never tell a wrong secret from an unknown id. */
    async verify(token: string): Promise<{ userId: string; login: string; key: KeyLimits }> {
      const m = KEY_FORMAT.exec(token);
      if (!m) throw new InvalidTokenError('malformed API key');
      const [, id, secret] = m as unknown as [string, string, string];
      const row = await repo.findKeyForAuth(db, id);
      const presented = hashOf(secret);
      if (!row || row.secret_hash.length !== presented.length || !timingSafeEqual(row.secret_hash, presented)) throw new InvalidTokenError('invalid API key');
      if (row.revoked_at) throw new InvalidTokenError('API key revoked');
      if (row.expires_at && row.expires_at.getTime() <= now()) throw new InvalidTokenError('API key expired');
      if (!row.last_used_at || now() - row.last_used_at.getTime() > LAST_USED_RESOLUTION_SECONDS * 1000) {
        await repo.touchKey(db, id, LAST_USED_RESOLUTION_SECONDS);
      }
      return { userId: row.user_id, login: row.login, key: { id: row.id, projectId: row.project_id, role: row.role } };
    },
  };
}

export type ApiKeys = ReturnType<typeof createApiKeys>;

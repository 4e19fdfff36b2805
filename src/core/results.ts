import { createHash } from 'node:crypto';
import type { Readable } from 'node:stream';
import type { Db } from '../db/create-db.ts';
import type { ResultRef } from './task-model.ts';
import { bestEffort } from '../lib/best-effort.ts';
import { BlobNotFoundError, type BlobStore } from './blob-store.ts';
import { DomainError } from './errors.ts';
import type { ResultCache } from './result-cache.ts';

/** A pointer result whose bytes are no longer in the blob store. */
export class ResultGoneError extends DomainError {
  constructor(taskId: string, location: string, options?: { cause?: unknown }) {
    super('ResultGone', `the stored result of task "${taskId}" is no longer available`, { taskId, location });
    if (options?.cause !== undefined) this.cause = options.cause;
  }
}

export interface ResultPointer {
  type: 'pointer';
  location: string;
  size: number;
  sha256: string;
  mediaType: string;
}

export type ResultView =
  | { storage: 'inline'; mediaType: string; size: number; sha256: string; value: unknown }
  | { storage: 'pointer'; pointer: ResultPointer };

export interface ResultBody {
  mediaType: string;
  size: number;
  sha256: string;
  body: Buffer | Readable;
}

interface StoredResult {
  content: Buffer | null;
  location: string | null;
  size: number;
  sha256: string;
  mediaType: string;
}

// Repository: the only SQL for results.

async function upsertResult(db: Db, taskId: string, r: StoredResult): Promise<void> {
  const row = { content: r.content, location: r.location, size: r.size, sha256: r.sha256, media_type: r.mediaType };
  await db
    .insertInto('results')
    .values({ task_id: taskId, ...row })
    .onConflict((oc) => oc.column('task_id').doUpdateSet(row))
    .execute();
}

async function upsertStaged(db: Db, taskId: string, r: { content: Buffer; size: number; sha256: string; mediaType: string }): Promise<void> {
  const row = { content: r.content, size: r.size, sha256: r.sha256, media_type: r.mediaType };
  await db
    .insertInto('result_staging')
    .values({ task_id: taskId, ...row })
    .onConflict((oc) => oc.column('task_id').doUpdateSet(row))
    .execute();
}

async function findStaged(db: Db, taskId: string): Promise<{ content: Buffer; size: number; sha256: string; mediaType: string } | undefined> {
  const row = await db.selectFrom('result_staging').select(['content', 'size', 'sha256', 'media_type']).where('task_id', '=', taskId).executeTakeFirst();
  return row && { content: row.content, size: Number(row.size), sha256: row.sha256, mediaType: row.media_type };
}

async function deleteStaged(db: Db, taskId: string): Promise<void> {
  await db.deleteFrom('result_staging').where('task_id', '=', taskId).execute();
}

async function findResult(db: Db, taskId: string): Promise<StoredResult | undefined> {
  const row = await db
    .selectFrom('results')
    .select(['content', 'location', 'size', 'sha256', 'media_type'])
    .where('task_id', '=', taskId)
    .executeTakeFirst();
  if (!row) return undefined;
  return { content: row.content, location: row.location, size: Number(row.size), sha256: row.sha256, mediaType: row.media_type };
}

const EXTENSIONS: Record<string, string> = {
  'application/json': '.json',
  'text/plain': '.txt',
  'text/markdown': '.md',
  'text/csv': '.csv',
  'text/html': '.html',
  'image/png': '.png',
  'image/jpeg': '.jpg',
  'application/pdf': '.pdf',
};

function essence(mediaType: string): string {
  return mediaType.split(';')[0]!.trim().toLowerCase();
}

function extensionFor(mediaType: string): string {
  const e = essence(mediaType);
  return EXTENSIONS[e] ?? (e.endsWith('+json') ? '.json' : '.bin');
}

function isJson(mediaType: string): boolean {
  const e = essence(mediaType);
  return e === 'application/json' || e.endsWith('+json');
}

function decodeInline(content: Buffer, mediaType: string): unknown {
  const text = content.toString('utf8');
  if (!isJson(mediaType)) return text;
  try {
    return JSON.parse(text);
  } catch {
    // Mislabelled content still reaches the client, as text, rather than failing the read.
    return text;
  }
}

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** What the cache of results was doing when it failed. */
export type ResultCacheOp = 'read' | 'write' | 'invalidate';

/**
 * Results live in Postgres (inline) or the blob store (pointers); the cache (Redis, or this process's memory) only
 * holds inline ones. Every cache step is
 * best effort: with Redis away, results are stored, published and read from Postgres as if the cache were empty.
 * A stale entry cannot outlive a failed invalidation in practice: entries are written only once a task succeeded,
 * and a succeeded task's result never changes.
 */
export function createResultService(deps: {
  db: Db;
  cache: ResultCache;
  blobs: BlobStore;
  inlineMaxBytes: number;
  cacheTtlSeconds?: number;
  keyPrefix?: string;
  /** How long a cache step may take before the caller goes on without it (default 1000). */
  cacheTimeoutMs?: number;
  onCacheError?: (op: ResultCacheOp, err: unknown, taskId: string) => void;
}) {
  const { db, blobs, inlineMaxBytes } = deps;
  const ttl = deps.cacheTtlSeconds ?? 3600;
  const prefix = deps.keyPrefix ?? '';
  const cacheKey = (taskId: string) => `${prefix}result:${taskId}`;
  const cacheTimeoutMs = deps.cacheTimeoutMs ?? 1000;
  const cache = <T>(op: ResultCacheOp, taskId: string, step: () => Promise<T>) =>
    bestEffort(`result cache ${op}`, step, { timeoutMs: cacheTimeoutMs, onError: (err) => deps.onCacheError?.(op, err, taskId) });

  async function readCache(taskId: string): Promise<(StoredResult & { content: Buffer }) | undefined> {
    const hit = await cache('read', taskId, () => deps.cache.read(cacheKey(taskId)));
    return hit && { ...hit, location: null };
  }

  async function writeCache(taskId: string, r: StoredResult & { content: Buffer }): Promise<void> {
    await cache('write', taskId, () => deps.cache.write(cacheKey(taskId), { content: r.content, size: r.size, sha256: r.sha256, mediaType: r.mediaType }, ttl));
  }

  async function invalidate(taskId: string): Promise<void> {
    await cache('invalidate', taskId, () => deps.cache.remove(cacheKey(taskId)));
  }

  /** Inline results come from the cache when they can; the row fills it on a miss. Pointers are never cached. */
  async function load(taskId: string): Promise<StoredResult | undefined> {
    const cached = await readCache(taskId);
    if (cached) return cached;
    const row = await findResult(db, taskId);
    if (row?.content) await writeCache(taskId, { ...row, content: row.content });
    return row;
  }

  return {
    /**
     * Called by the dispatch: small outputs are stored inline at once; large ones are staged in Postgres and moved to
     * the blob store by publish(), so an upload that fails is retried without running the tool again.
     */
    async save(taskId: string, content: Buffer, mediaType: string): Promise<ResultRef> {
      const size = content.length;
      const sha256 = sha256Hex(content);
      if (size <= inlineMaxBytes) {
        await upsertResult(db, taskId, { content, location: null, size, sha256, mediaType });
        await deleteStaged(db, taskId);
      } else {
        await upsertStaged(db, taskId, { content, size, sha256, mediaType });
      }
      // A retried dispatch may have replaced an earlier result: never serve the old bytes from the cache.
      await invalidate(taskId);
      return { storage: size <= inlineMaxBytes ? 'inline' : 'staged', size, sha256, mediaType };
    },

    /**
     * Makes a saved output available (idempotent): a staged one moves to the blob store, an inline one goes into the
     * cache. Returns the stored result's reference.
     */
    async publish(taskId: string): Promise<ResultRef | undefined> {
      const staged = await findStaged(db, taskId);
      if (staged) {
        const { location } = await blobs.put(`tasks/${taskId}/result${extensionFor(staged.mediaType)}`, staged.content, staged.mediaType);
        await db.transaction().execute(async (trx) => {
          await upsertResult(trx, taskId, { content: null, location, size: staged.size, sha256: staged.sha256, mediaType: staged.mediaType });
          await deleteStaged(trx, taskId);
        });
        await invalidate(taskId);
      }
      const row = await findResult(db, taskId);
      if (!row) return undefined;
      if (row.content) await writeCache(taskId, { ...row, content: row.content });
      return { storage: row.content ? 'inline' : 'pointer', size: row.size, sha256: row.sha256, mediaType: row.mediaType };
    },

    async describe(taskId: string): Promise<ResultView | undefined> {
      const r = await load(taskId);
      if (!r) return undefined;
      if (r.content) {
        return { storage: 'inline', mediaType: r.mediaType, size: r.size, sha256: r.sha256, value: decodeInline(r.content, r.mediaType) };
      }
      return {
        storage: 'pointer',
        pointer: { type: 'pointer', location: blobs.publicLocation(r.location!), size: r.size, sha256: r.sha256, mediaType: r.mediaType },
      };
    },

    async open(taskId: string): Promise<ResultBody | undefined> {
      const r = await load(taskId);
      if (!r) return undefined;
      if (r.content) return { mediaType: r.mediaType, size: r.size, sha256: r.sha256, body: r.content };
      try {
        const { stream } = await blobs.open(r.location!);
        return { mediaType: r.mediaType, size: r.size, sha256: r.sha256, body: stream };
      } catch (err) {
        if (err instanceof BlobNotFoundError) throw new ResultGoneError(taskId, r.location!, { cause: err });
        throw err;
      }
    },
  };
}

export type ResultService = ReturnType<typeof createResultService>;

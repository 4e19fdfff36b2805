import { existsSync, rmSync } from 'node:fs';
import path from 'node:path';
import { acquireRunLock } from './lib/run-lock.ts';

// `orchestrator reset`: back to a first run of `npm start`, for the state `dev` keeps in its data folder.

/** The embedded Postgres folder inside DATA_DIR. */
export const EMBEDDED_POSTGRES_DIR = 'postgres';

/**
 * Kept on purpose: the JWT secret (tokens people hold, and any a separate DATABASE_URL's users were given, stay
 * valid), the encryption key (secrets sealed in a database reset does not touch stay readable) and the prebuilt
 * workflow bundle (a build output, not state).
 */
export const KEPT_FILES = ['jwt-secret', 'encryption-key', 'workflow-bundle.js'];

export class ResetRefusedError extends Error {}

export interface ResetPlan {
  dataDir: string;
  /** What would be deleted, each with what it is; only what exists. */
  targets: { label: string; path: string }[];
  /** Said to the user: what stays (of what exists), and why. */
  notes: string[];
}

/**
 * What reset clears: the embedded Postgres and the results beside it (only when Postgres is embedded: with
 * DATABASE_URL set, those results belong to tasks that still exist there), and the Temporal dev server's state.
 */
export function planReset(dataDir: string, opts: { databaseUrlGiven: boolean }): ResetPlan {
  const candidates = [
    ...(opts.databaseUrlGiven
      ? []
      : [
          { label: 'embedded Postgres', path: path.join(dataDir, EMBEDDED_POSTGRES_DIR) },
          { label: 'large results (file store)', path: path.join(dataDir, 'results') },
        ]),
    ...['temporal.db', 'temporal.db-wal', 'temporal.db-shm'].map((f) => ({ label: 'Temporal dev server state', path: path.join(dataDir, f) })),
  ];
  const kept = KEPT_FILES.filter((f) => existsSync(path.join(dataDir, f)));
  return {
    dataDir,
    targets: candidates.filter((t) => existsSync(t.path)),
    notes: [
      ...(kept.length > 0 ? [`kept: ${kept.join(', ')} (tokens stay valid, sealed secrets stay readable)`] : []),
      ...(opts.databaseUrlGiven ? ['DATABASE_URL is set: that database is not touched'] : []),
    ],
  };
}

/** Deletes the plan's targets, holding the data folder's lock so no `dev` starts on it meanwhile. */
export function applyReset(plan: ResetPlan): void {
  const lock = acquireRunLock(plan.dataDir, 'reset');
  try {
    for (const t of plan.targets) rmSync(t.path, { recursive: true, force: true });
  } finally {
    lock.release();
  }
}

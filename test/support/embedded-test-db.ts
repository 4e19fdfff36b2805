import { cp, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createDb } from '../../src/db/create-db.ts';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { MIGRATIONS_DIR, type TestDb } from './test-db.ts';

// The second test pass (ORCHESTRATOR_TEST_STORES=embedded) runs the stack on the embedded Postgres `npm start` uses
// without DATABASE_URL. Creating PGlite's files and migrating them is the slow part, so it is done once per run into
// a template folder; each test file starts its own PGlite on a copy (a fresh database, as on real Postgres).

/** `embedded`: the stack runs on the embedded Postgres and in-process stores instead of Postgres and Redis. */
export const EMBEDDED_TEST_STORES = process.env.ORCHESTRATOR_TEST_STORES === 'embedded';

let template: Promise<string> | undefined;

function migratedTemplate(): Promise<string> {
  template ??= (async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'orch-pglite-template-'));
    const postgres = await startEmbeddedPostgres({ dataDir: dir });
    const db = createDb(postgres.url, { maxConnections: 1 });
    try {
      await migrateToLatest(db, MIGRATIONS_DIR);
    } finally {
      await db.destroy();
      await postgres.stop();
    }
    process.once('exit', () => void rm(dir, { recursive: true, force: true }));
    return dir;
  })();
  return template;
}

export async function createEmbeddedTestDb(): Promise<TestDb> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'orch-pglite-'));
  await cp(await migratedTemplate(), dir, { recursive: true });
  const postgres = await startEmbeddedPostgres({ dataDir: dir });
  const db = createDb(postgres.url, { maxConnections: 5 });
  return {
    db,
    url: postgres.url,
    async drop() {
      await db.destroy();
      await postgres.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

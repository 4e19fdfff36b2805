import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDb, ensureDatabase, type Db } from '../../src/db/create-db.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';

export const PG_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
export const REDIS_TEST_URL = 'redis://127.0.0.1:6379';
export const MIGRATIONS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');

export interface TestDb {
  db: Db;
  url: string;
  drop(): Promise<void>;
}

/** A fresh, migrated database for one test file; drop() removes it. */
export async function createTestDb(label = 't'): Promise<TestDb> {
  const name = `orch_${label.replace(/[^a-z0-9]/g, '')}_${randomBytes(4).toString('hex')}`;
  const url = `postgres://postgres@127.0.0.1:5432/${name}`;
  await ensureDatabase(url);
  const db = createDb(url, { maxConnections: 5 });
  await migrateToLatest(db, MIGRATIONS_DIR);
  return {
    db,
    url,
    async drop() {
      await db.destroy();
      const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
      await admin.connect();
      try {
        // pool.end() resolves before the server has seen its connections close; forcing the drop then kills them
        // mid-close, and the pool re-emits that as an uncaught error in whichever test runs next.
        for (let i = 0; i < 100; i++) {
          const { rows } = await admin.query<{ n: number }>('select count(*)::int as n from pg_stat_activity where datname = $1', [name]);
          if (rows[0]!.n === 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await admin.query(`drop database if exists "${name}" with (force)`);
      } finally {
        await admin.end();
      }
    },
  };
}

/** A task row (with its user and project) for tests of services that hang off a task. */
export async function insertTask(db: Db): Promise<string> {
  const user = await db.insertInto('users').values({ login: `u-${randomUUID()}` }).returning('id').executeTakeFirstOrThrow();
  const project = await db.insertInto('projects').values({ name: 'p', created_by: user.id }).returning('id').executeTakeFirstOrThrow();
  const id = randomUUID();
  await db
    .insertInto('tasks')
    .values({
      id,
      project_id: project.id,
      created_by: user.id,
      tool: 'echo',
      arguments: '{}',
      workflow_id: `task-${id}`,
      status: 'running',
      attempts: '[]',
    })
    .execute();
  return id;
}

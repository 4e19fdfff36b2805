import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startEmbeddedPostgres } from '../../src/db/embedded-postgres.ts';
import { RUN_LOCK_FILE } from '../../src/lib/run-lock.ts';
import { runCliProcess } from '../support/cli-process.ts';

// The data folder of `npm start` from the outside: `orchestrator reset` (confirmation, the lock of a running
// service, what it deletes and what it keeps), and the server commands that need a real DATABASE_URL.

/** The environment of a machine with nothing configured: no database, no secrets, this data folder. */
function bareEnv(dataDir: string): NodeJS.ProcessEnv {
  const { DATABASE_URL: _db, REDIS_URL: _redis, JWT_SECRET: _jwt, ENCRYPTION_KEY: _key, ...rest } = process.env;
  return { ...rest, DATA_DIR: dataDir, LOG_LEVEL: 'warn' };
}

async function tableNames(url: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string }>("select tablename as name from pg_tables where schemaname = 'public' order by 1");
    return rows.map((r) => r.name);
  } finally {
    await client.end();
  }
}

describe('local data folder: reset and the commands that need DATABASE_URL', function () {
  let dataDir: string;

  before(async function () {
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'orch-local-data-'));
  });

  after(async function () {
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('token without DATABASE_URL creates the embedded database, migrates it and keeps the user', async function () {
    const run = await runCliProcess(['token', '--login', 'alice'], { env: bareEnv(dataDir), timeoutMs: 180_000 });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout.trim(), /^[\w-]+\.[\w-]+\.[\w-]+$/, 'a JWT');
    assert.ok(!existsSync(path.join(dataDir, RUN_LOCK_FILE)), 'the lock is released');
    const postgres = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres') });
    try {
      const client = new pg.Client({ connectionString: postgres.url });
      await client.connect();
      const { rows } = await client.query('select login from users');
      await client.end();
      assert.deepEqual(rows, [{ login: 'alice' }]);
    } finally {
      await postgres.stop();
    }
  });

  it('reset refuses without a terminal and without --yes, and deletes nothing', async function () {
    await writeFile(path.join(dataDir, 'temporal.db'), 'sqlite state');
    const run = await runCliProcess(['reset'], { env: bareEnv(dataDir) });
    assert.equal(run.code, 1);
    assert.match(run.stderr, /reset refused: confirm on a terminal, or pass --yes/);
    assert.match(run.stdout, /postgres\s+embedded Postgres/);
    assert.ok(existsSync(path.join(dataDir, 'postgres')) && existsSync(path.join(dataDir, 'temporal.db')));
  });

  it('reset refuses while a live process holds the data folder', async function () {
    const lock = path.join(dataDir, RUN_LOCK_FILE);
    await writeFile(lock, JSON.stringify({ pid: process.pid, command: 'dev', startedAt: new Date().toISOString() }));
    try {
      const run = await runCliProcess(['reset', '--yes'], { env: bareEnv(dataDir) });
      assert.equal(run.code, 1);
      assert.match(run.stderr, new RegExp(`in use by orchestrator dev \\(pid ${process.pid}`));
      assert.ok(existsSync(path.join(dataDir, 'postgres')));
    } finally {
      await rm(lock);
    }
  });

  it('reset --yes deletes the embedded Postgres and Temporal state, and keeps the secrets', async function () {
    const secret = await readFile(path.join(dataDir, 'jwt-secret'), 'utf8');
    // A lock left by a process that is gone does not count.
    await writeFile(path.join(dataDir, RUN_LOCK_FILE), JSON.stringify({ pid: 2 ** 22 + 12345, command: 'dev', startedAt: new Date().toISOString() }));
    const run = await runCliProcess(['reset', '--yes'], { env: bareEnv(dataDir) });
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /kept: jwt-secret, encryption-key \(/, 'only what exists is said to be kept (no workflow bundle here)');
    assert.ok(!existsSync(path.join(dataDir, 'postgres')) && !existsSync(path.join(dataDir, 'temporal.db')));
    assert.equal(await readFile(path.join(dataDir, 'jwt-secret'), 'utf8'), secret);
    assert.ok(existsSync(path.join(dataDir, 'encryption-key')));

    const postgres = await startEmbeddedPostgres({ dataDir: path.join(dataDir, 'postgres') });
    try {
      assert.deepEqual(await tableNames(postgres.url), [], 'the next start begins with an empty database');
    } finally {
      await postgres.stop();
    }
  });

  it('api, worker and migrate without DATABASE_URL stop with one line naming it', async function () {
    const commands = ['api', 'worker', 'migrate'];
    const runs = await Promise.all(commands.map((c) => runCliProcess([c], { env: { ...bareEnv(dataDir), JWT_SECRET: 'x'.repeat(32), ENCRYPTION_KEY: 'a'.repeat(64) } })));
    for (const [i, run] of runs.entries()) {
      assert.equal(run.code, 1, commands[i]);
      const problems = run.stderr.split('\n').filter((l) => l.startsWith('  - '));
      assert.deepEqual(problems.length, 1, run.stderr);
      assert.match(problems[0]!, /DATABASE_URL: not set\. api, worker, migrate and keys need a Postgres URL/);
    }
  });
});

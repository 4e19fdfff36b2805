import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { PG_ADMIN_URL } from '../support/test-db.ts';

// The real entry point, as `npm start` runs it: readable lines at a terminal, JSON lines into a pipe.

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const MAIN = path.join(ROOT, 'src/main.ts');

describe('log format of the running process', function () {
  const databases: string[] = [];

  /** `orchestrator migrate` on a database that does not exist yet: it logs the creation and every migration. */
  function envFor(extra: Record<string, string>) {
    const name = `orch_logfmt_${randomBytes(4).toString('hex')}`;
    databases.push(name);
    return {
      PATH: process.env.PATH ?? '',
      DATABASE_URL: `postgres://postgres@127.0.0.1:5432/${name}`,
      JWT_SECRET: randomBytes(32).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      ...extra,
    };
  }

  after(async function () {
    const admin = new pg.Client({ connectionString: PG_ADMIN_URL });
    await admin.connect();
    try {
      for (const name of databases) await admin.query(`drop database if exists "${name}" with (force)`);
    } finally {
      await admin.end();
    }
  });

  it('writes JSON lines when stdout is a pipe (LOG_FORMAT=auto)', async function () {
    const { stdout } = await run(process.execPath, ['--import', 'tsx', MAIN, 'migrate'], { cwd: ROOT, env: envFor({ LOG_FORMAT: 'auto' }) });
    const lines = stdout.trim().split('\n');
    assert.ok(lines.length >= 2, stdout);
    for (const line of lines) assert.equal(typeof JSON.parse(line).msg, 'string', line);
    assert.ok(lines.some((l) => JSON.parse(l).msg === 'created database'));
  });

  it('writes readable, coloured lines at a terminal (LOG_FORMAT=auto)', async function () {
    // script(1) gives the process a real pseudo-terminal as stdout.
    const env = envFor({ LOG_FORMAT: 'auto' });
    const command = `'${process.execPath}' --import tsx '${MAIN}' migrate`;
    const { stdout } = await run('script', ['-qec', command, '/dev/null'], { cwd: ROOT, env });
    const plain = stdout.replace(/\x1b\[[0-9;]*m/g, '');
    assert.match(stdout, /\x1b\[/, 'coloured');
    assert.match(plain, /INFO \(orchestrator\): created database/);
    assert.match(plain, /INFO \(orchestrator\): migration/);
    assert.doesNotMatch(plain, /"level":/);
  });

  it('LOG_FORMAT=json keeps JSON at a terminal, and a bad value stops the start with one clear line', async function () {
    const env = envFor({ LOG_FORMAT: 'json' });
    const { stdout } = await run('script', ['-qec', `'${process.execPath}' --import tsx '${MAIN}' migrate`, '/dev/null'], { cwd: ROOT, env });
    assert.match(stdout, /\{"level":30,.*"msg":"created database"/);

    const bad = await run(process.execPath, ['--import', 'tsx', MAIN, 'migrate'], { cwd: ROOT, env: envFor({ LOG_FORMAT: 'fancy' }) }).then(
      () => assert.fail('started with LOG_FORMAT=fancy'),
      (err: { code: number; stderr: string }) => err,
    );
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /LOG_FORMAT/);
  });
});

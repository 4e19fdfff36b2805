import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { RUN_LOCK_FILE } from '../../src/lib/run-lock.ts';
import { runCliProcess } from '../support/cli-process.ts';
import { nothingConfiguredEnv, startDevProcess, type DevProcess } from '../support/dev-process.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { REDIS_TEST_URL } from '../support/test-db.ts';

// `npm start` on a machine with nothing configured: no DATABASE_URL, no REDIS_URL, a fresh data folder. The real
// entry (src/main.ts dev) runs as a child process; a task goes through REST and SSE to an MCP server on loopback.

describe('npm start with nothing configured (embedded Postgres, in-process Redis)', function () {
  let dataDir: string;
  let env: NodeJS.ProcessEnv;
  let child: ChildProcess;
  let exited: Promise<number | null>;
  let dev: DevProcess;
  let url: string;
  let oracle: TestMcpServer;
  const redisPrefix = `e2e-embedded-${randomBytes(4).toString('hex')}:`;

  before(async function () {
    this.timeout(300_000);
    dataDir = await mkdtemp(path.join(os.tmpdir(), 'orch-npm-start-'));
    oracle = await startTestMcpServer({ name: 'oracle' });
    // Were anything to reach the real Redis after all, its keys would carry this prefix (checked below).
    const started = await nothingConfiguredEnv(dataDir, { REDIS_PREFIX: redisPrefix });
    env = started.env;
    url = `http://127.0.0.1:${started.port}`;
    dev = await startDevProcess(env, 280_000);
    ({ child, exited } = dev);
  });

  after(async function () {
    if (child && child.exitCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    await oracle?.stop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it('says in its banner what is embedded and where the data lives', function () {
    assert.match(dev.stdout(), new RegExp(`Postgres\\s+embedded \\(PGlite\\), data in ${escape(path.join(dataDir, 'postgres'))}`));
    assert.match(dev.stdout(), /Redis\s+in process/);
    assert.match(dev.stdout(), new RegExp(`Temporal state\\s+${escape(path.join(dataDir, 'temporal.db'))}`));
  });

  it('keeps the embedded Postgres password to itself: only in the owner-only running.json, never in its output', function () {
    const file = path.join(dataDir, RUN_LOCK_FILE);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const password = decodeURIComponent(new URL((JSON.parse(readFileSync(file, 'utf8')) as { databaseUrl: string }).databaseUrl).password);
    assert.ok(password.length >= 32);
    assert.ok(!dev.stdout().includes(password) && !dev.stderr().includes(password), 'the password is in the output');
  });

  it('runs a task from REST to the MCP server and back, with its SSE stream, on embedded stores only', async function () {
    const ready = await fetch(`${url}/readyz`);
    const readiness = (await ready.json()) as { checks: Record<string, string> };
    assert.equal(ready.status, 200, JSON.stringify(readiness));
    assert.equal(readiness.checks.postgres, 'up');
    assert.equal(readiness.checks.redis, 'in process');

    const minted = await runCliProcess(['token', '--login', 'erin'], { env, timeoutMs: 120_000 });
    assert.equal(minted.code, 0, minted.stderr);
    const headers = { Authorization: `Bearer ${minted.stdout.trim()}`, 'Content-Type': 'application/json' };
    const post = async (p: string, body: unknown) => {
      const res = await fetch(`${url}${p}`, { method: 'POST', headers, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as any };
    };

    const project = await post('/v1/projects', { name: 'first' });
    assert.equal(project.status, 201, JSON.stringify(project.body));
    const server = await post('/v1/mcps', { name: 'tools', oracleUrl: oracle.url });
    assert.equal(server.status, 201, JSON.stringify(server.body));
    const submitted = await post('/v1/tasks', { projectId: project.body.id, tool: 'echo', arguments: { text: 'no install needed' } });
    assert.equal(submitted.status, 202, JSON.stringify(submitted.body));
    const id = submitted.body.id as string;

    const { events, closedByServer } = await readEvents(`${url}/v1/tasks/${id}/events`, { token: minted.stdout.trim(), timeoutMs: 60_000 });
    assert.equal(closedByServer, true, 'the stream closes after the terminal event');
    assert.equal(events[0]!.event, 'snapshot');
    const logged = events.slice(1);
    assert.deepEqual(logged.map((e) => Number(e.id)), logged.map((_, i) => i + 1), 'ids are the seqs 1..n');
    assert.deepEqual(logged.filter((e) => e.event === 'status').map((e) => e.data.status), ['queued', 'routing', 'running', 'succeeded']);

    const task = await fetch(`${url}/v1/tasks/${id}`, { headers });
    const body = (await task.json()) as any;
    assert.equal(body.status, 'succeeded');
    assert.deepEqual(body.result.content, [{ type: 'text', text: 'no install needed' }]);
    const result = await fetch(`${url}/v1/tasks/${id}/result`, { headers });
    assert.equal(result.status, 200);
    assert.deepEqual(((await result.json()) as any).content, [{ type: 'text', text: 'no install needed' }]);
    assert.equal(oracle.callCount('echo'), 1);

    const redis = new Redis(REDIS_TEST_URL);
    try {
      assert.deepEqual(await redis.keys(`${redisPrefix}*`), [], 'nothing reached the real Redis');
    } finally {
      redis.disconnect();
    }
  });

  it('stops cleanly on SIGTERM, releasing the data folder', async function () {
    child.kill('SIGTERM');
    const code = await Promise.race([exited, new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 60_000))]);
    assert.equal(code, 0, `exit ${code}\n${dev.stderr().slice(-2000)}`);
    assert.ok(!existsSync(path.join(dataDir, RUN_LOCK_FILE)), 'the data folder is free again');
    assert.ok(existsSync(path.join(dataDir, 'postgres')), 'the embedded database stays for the next start');
  });
});

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

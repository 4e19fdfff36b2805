import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Runs `orchestrator COMMAND` with only what it needs to start, and no REDIS_URL. */
function runWithoutRedis(command: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', command], {
    env: {
      PATH: process.env.PATH,
      JWT_SECRET: randomBytes(32).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      // Nothing listens here: the command must refuse before it connects to anything.
      DATABASE_URL: 'postgres://postgres@127.0.0.1:1/none',
      TEMPORAL_ADDRESS: '127.0.0.1:1',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('exit', (code) => resolve({ code, stderr })));
}

describe('separate api and worker processes without REDIS_URL', function () {
  it('refuses to start `api` or `worker`, naming REDIS_URL and why', async function () {
    const commands = ['api', 'worker'];
    // Both at once: each start pays for loading TypeScript.
    const runs = await Promise.all(commands.map(runWithoutRedis));
    runs.forEach(({ code, stderr }, i) => {
      assert.equal(code, 1, stderr);
      assert.match(stderr, new RegExp(`REDIS_URL: \`orchestrator ${commands[i]}\` needs a Redis shared by every API and worker process`));
      assert.doesNotMatch(stderr, /ECONNREFUSED|at .*\.ts:\d+/, 'a configuration error, not a failed connection or a stack trace');
    });
  });
});

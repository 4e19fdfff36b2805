import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { runCli } from '../../src/cli/program.ts';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { runCliProcess, type CliRun } from '../support/cli-process.ts';
import { startDropProxy } from '../support/drop-proxy.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { startStack, type Stack } from '../support/stack.ts';

// The real `orchestrator` CLI, as a child process, against a real stack: API, worker, Temporal, Postgres, Redis and
// MCP servers on 127.0.0.1.

const JWT_SECRET = randomBytes(32).toString('hex');
const ENCRYPTION_KEY = randomBytes(32).toString('hex');
const SPACE_TOKEN = 'hf_cli_space_token_1234567890';

describe('orchestrator CLI', function () {
  let stack: Stack;
  let echo: TestMcpServer;
  let heavyOracle: TestMcpServer;
  let space: TestMcpServer;
  let home: string;
  let configFile: string;
  let env: NodeJS.ProcessEnv;

  const cli = (args: string[], more: Parameters<typeof runCliProcess>[1] extends infer O ? Partial<O> : never = {}) =>
    runCliProcess(args, { env, ...more });
  /** The same commands in this process (real HTTP to the real stack): for checks that need no process boundary. */
  const inProcess = async (args: string[]): Promise<CliRun> => {
    let stdout = '';
    let stderr = '';
    const io = { env, stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, stdin: process.stdin };
    const code = await runCli(args, io);
    return { code, stdout, stderr };
  };
  const ok = (r: CliRun, code = 0) => assert.equal(r.code, code, `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);

  before(async function () {
    [echo, heavyOracle, space] = await Promise.all([
      startTestMcpServer({ name: 'echo' }),
      startTestMcpServer({ name: 'heavy-oracle', toolPrefix: 'heavy_' }),
      startTestMcpServer({ name: 'space', toolPrefix: 'heavy_', requireBearer: SPACE_TOKEN }),
    ]);
    stack = await startStack({ env: { JWT_SECRET, ENCRYPTION_KEY } });
    home = await mkdtemp(path.join(os.tmpdir(), 'orch-cli-home-'));
    configFile = path.join(home, 'config', 'orchestrator.json');
    env = {
      PATH: process.env.PATH,
      HOME: home,
      ORCHESTRATOR_CONFIG: configFile,
      // What `orchestrator login` needs to make a local token, as on the machine running `npm start`.
      DATABASE_URL: stack.config.databaseUrl,
      JWT_SECRET,
      ENCRYPTION_KEY,
      DATA_DIR: path.join(home, 'data'),
    };
  });

  after(async function () {
    await stack?.stop();
    await Promise.all([echo?.stop(), heavyOracle?.stop(), space?.stop()]);
    if (home) await rm(home, { recursive: true, force: true });
  });

  it('logs in with a local token and keeps it in a 0600 file', async function () {
    const r = await cli(['login', '--api', stack.url, '--as', 'carol']);
    ok(r);
    assert.match(r.stdout, new RegExp(`signed in to ${stack.url} as carol \\(0 projects\\)`));
    assert.equal((await stat(configFile)).mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(configFile, 'utf8'));
    assert.equal(stored.api, stack.url);
    assert.equal(typeof stored.token, 'string');

    const me = await inProcess(['whoami', '--json']);
    ok(me);
    assert.deepEqual({ ...JSON.parse(me.stdout), expiresAt: undefined, userId: undefined }, {
      api: stack.url, login: 'carol', projects: 0, defaultProject: null, expiresAt: undefined, userId: undefined,
    });
  });

  it('refuses a bad token at login and leaves the stored one alone', async function () {
    const before = await readFile(configFile, 'utf8');
    const r = await inProcess(['login', '--token', 'not-a-token']);
    ok(r, 1);
    assert.match(r.stderr, /^error: not signed in, or the token was refused/);
    assert.equal(await readFile(configFile, 'utf8'), before);
  });

  it('creates a project that becomes the default, and registers an MCP server', async function () {
    const created = await cli(['projects', 'create', 'demo']);
    ok(created);
    const projectId = created.stdout.trim();
    assert.match(projectId, /^[0-9a-f-]{36}$/);
    assert.match(created.stderr, /created project demo \(now your default project\)/);
    assert.equal(JSON.parse(await readFile(configFile, 'utf8')).project, projectId);

    const list = await inProcess(['projects', 'list', '--json']);
    ok(list);
    assert.deepEqual(JSON.parse(list.stdout).map((p: { id: string; name: string }) => [p.id, p.name]), [[projectId, 'demo']]);

    const added = await cli(['mcps', 'add', 'echo-server', echo.url]);
    ok(added);
    assert.match(added.stdout, /^echo-server {2}[0-9a-f-]{36}\n/);
    assert.match(added.stdout, /^ {4}slow {2}Sleeps ms milliseconds/m);
    const shown = await inProcess(['mcps', 'show', 'echo-server', '--json']);
    ok(shown);
    assert.deepEqual(JSON.parse(shown.stdout).tools.map((t: { name: string }) => t.name).sort(), ['echo', 'fail', 'large', 'slow', 'whoami']);
  });

  it('runs a tool with progress to the end and prints its result', async function () {
    const r = await cli(['run', 'slow', '--arg', 'ms:=1500', '--arg', 'steps:=3']);
    ok(r);
    assert.match(r.stdout, /^done after \d+ ms\n$/);
    const lines = r.stderr.split('\n');
    for (const i of [1, 2, 3]) assert.equal(lines.filter((l) => l.trim() === `progress ${i}/3 step ${i}`).length, 1, r.stderr);
    assert.ok(lines.some((l) => /running on echo-server \(oracle\)$/.test(l)), r.stderr);
    assert.match(lines.at(-2) ?? '', /succeeded on echo-server \(oracle\)$/, r.stderr);
  });

  it('prints the finished task as JSON with --json, nothing else on stdout', async function () {
    const r = await cli(['run', 'echo', '--arg', 'text=123', '--json']);
    ok(r);
    const task = JSON.parse(r.stdout);
    assert.equal(task.status, 'succeeded');
    assert.deepEqual(task.result, { content: [{ type: 'text', text: '123' }] });
    assert.equal(r.stderr, '');

    const submitted = await cli(['tasks', 'submit', '--tool', 'echo', '--args', '-', '--wait', '--project', 'demo'], { input: '{"text":"from stdin"}' });
    ok(submitted);
    assert.equal(submitted.stdout, 'from stdin\n');
  });

  it('exits 1 for a failed task, 2 for usage, 4 for a canceled one', async function () {
    const failed = await cli(['run', 'fail', '--arg', 'message=boom']);
    ok(failed, 1);
    assert.match(failed.stderr, /failed: \w+: .*boom/);

    const usage = await cli(['run', 'echo', '--arg', 'no-equals-sign']);
    ok(usage, 2);
    const unknownProject = await inProcess(['run', 'echo', '--project', 'nope']);
    ok(unknownProject, 2);
    assert.match(unknownProject.stderr, /no project named "nope"/);
    const invalid = await inProcess(['tasks', 'list', '--limit', '0']);
    ok(invalid, 2);
    assert.match(invalid.stderr, /400 ValidationFailed/);

    const detached = await cli(['run', 'slow', '--arg', 'ms:=20000', '--detach']);
    ok(detached);
    const id = detached.stdout.trim();
    ok(await inProcess(['tasks', 'cancel', id]));
    const watched = await cli(['tasks', 'watch', id]);
    ok(watched, 4);
    assert.match(watched.stderr, /canceled/);
    const shown = await inProcess(['tasks', 'show', id, '--json']);
    assert.equal(JSON.parse(shown.stdout).status, 'canceled');
    const result = await inProcess(['tasks', 'result', id]);
    ok(result, 1);
    assert.match(result.stderr, /the task has no result \(status: canceled\) \(409 ResultNotReady\)/);
  });

  it('exits 3 when a task waits for consent, and goes on after consent is granted', async function () {
    const spaceDown = await cli(['mcps', 'add', 'scanner', heavyOracle.url, '--space', '--fallback', '--heavy-tool', 'heavy_slow']);
    ok(spaceDown);
    const bound = await cli(['spaces', 'bind', 'scanner', '--url', space.url, '--hf-token-stdin'], { input: `${SPACE_TOKEN}\n` });
    ok(bound);
    assert.equal(bound.stdout.includes(SPACE_TOKEN) || bound.stderr.includes(SPACE_TOKEN), false);
    space.mode = 'down';

    const waiting = await cli(['run', 'heavy_slow', '--arg', 'ms:=10'], { timeoutMs: 90_000 });
    ok(waiting, 3);
    assert.match(waiting.stderr, /awaiting_consent/);
    const id = /orchestrator tasks consent (\S+) --grant/.exec(waiting.stderr)?.[1];
    assert.ok(id, waiting.stderr);

    ok(await inProcess(['tasks', 'consent', id, '--grant']));
    const done = await cli(['tasks', 'watch', id]);
    ok(done);
    assert.match(done.stdout, /^done after \d+ ms\n$/);
    assert.equal(heavyOracle.callCount('slow'), 1);

    const list = await inProcess(['tasks', 'list', '--status', 'succeeded', '--json']);
    ok(list);
    assert.ok(JSON.parse(list.stdout).items.some((t: { id: string }) => t.id === id));
    const out = path.join(home, 'result.json');
    ok(await inProcess(['tasks', 'result', id, '--out', out]));
    assert.match(JSON.parse(await readFile(out, 'utf8')).content[0].text, /^done after/);
    ok(await inProcess(['spaces', 'unbind', 'scanner']));
  });

  it('picks the event stream up again after the connection drops, without repeating an event', async function () {
    const proxy = await startDropProxy(Number(new URL(stack.url).port));
    try {
      let dropped = false;
      const r = await cli(['--api', proxy.url, 'run', 'slow', '--arg', 'ms:=3000', '--arg', 'steps:=6'], {
        onStderr: (soFar) => {
          if (!dropped && soFar.includes('progress 2/6')) {
            dropped = true;
            proxy.dropAll();
          }
        },
      });
      ok(r);
      assert.ok(dropped);
      assert.match(r.stderr, /connection lost .*; reconnecting \(attempt 1\)/);
      const progress = r.stderr.split('\n').filter((l) => l.trim().startsWith('progress'));
      assert.deepEqual(progress.map((l) => l.trim()), [1, 2, 3, 4, 5, 6].map((i) => `progress ${i}/6 step ${i}`));
      assert.match(r.stdout, /^done after/);
    } finally {
      await proxy.close();
    }
  });

  it('works as a linked bin (npm link) from any folder, server commands included', async function () {
    const prefix = await mkdtemp(path.join(os.tmpdir(), 'orch-cli-prefix-'));
    try {
      await promisify(execFile)('npm', ['link', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: PROJECT_ROOT, env: { ...process.env, npm_config_prefix: prefix } });
      const bin = path.join(prefix, 'bin', 'orchestrator');
      const me = await cli(['whoami'], { command: bin, cwd: os.tmpdir() });
      ok(me);
      assert.match(me.stdout, /^carol at /);
      // A server command through the same symlinks: the launcher finds src/main.ts and tsx from its real path.
      const token = await cli(['token', '--login', 'dave'], { command: bin, cwd: os.tmpdir() });
      ok(token);
      assert.match(token.stdout, /^eyJ[\w-]+\.[\w-]+\.[\w-]+\n$/);
    } finally {
      await rm(prefix, { recursive: true, force: true });
    }
  });

  it('registers a server that acts as the submitting user on GitHub with --acts-as, and refuses an unknown provider', async function () {
    // Its own tool names, so no task of the other cases is routed to a server that wants carol's GitHub token.
    const gh = await startTestMcpServer({ name: 'gh', toolPrefix: 'gh_' });
    try {
      ok(await inProcess(['mcps', 'add', 'gh-tools', gh.url, '--acts-as', 'github']));
      const shown = await inProcess(['mcps', 'show', 'gh-tools']);
      ok(shown);
      assert.match(shown.stdout, /acts as {4}the submitting user on github/);
      const json = await inProcess(['mcps', 'show', 'gh-tools', '--json']);
      assert.equal(JSON.parse(json.stdout).actsAs, 'github');

      const refused = await inProcess(['mcps', 'add', 'gl-tools', gh.url, '--acts-as', 'gitlab']);
      assert.notEqual(refused.code, 0, refused.stdout);
      assert.match(refused.stderr, /actsAs/);
      ok(await inProcess(['mcps', 'show', 'gl-tools']), 1);
    } finally {
      await gh.stop();
    }
  });

  it('logs out: the token is gone from the file, the API address stays', async function () {
    ok(await cli(['logout']));
    const stored = JSON.parse(await readFile(configFile, 'utf8'));
    assert.equal(stored.token, undefined);
    assert.equal(stored.api, stack.url);
    assert.equal((await stat(configFile)).mode & 0o777, 0o600);
    const me = await cli(['whoami']);
    ok(me, 2);
    assert.match(me.stderr, /not signed in/);
  });
});

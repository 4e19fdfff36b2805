import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { configPath, DEFAULT_API, readConfig, resolveConnection, writeConfig } from '../../src/cli/config-file.ts';
import { UsageError } from '../../src/cli/exit-codes.ts';

describe('cli config file', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'orch-cli-config-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('lives in ORCHESTRATOR_CONFIG, else under XDG_CONFIG_HOME, else ~/.config', () => {
    assert.equal(configPath({ ORCHESTRATOR_CONFIG: '/x/c.json', HOME: '/home/a' }), '/x/c.json');
    assert.equal(configPath({ XDG_CONFIG_HOME: '/xdg', HOME: '/home/a' }), '/xdg/orchestrator/config.json');
    assert.equal(configPath({ HOME: '/home/a' }), '/home/a/.config/orchestrator/config.json');
  });

  it('is written 0600 in a 0700 folder whatever the umask, and read back', async () => {
    const file = path.join(dir, 'nested', 'config.json');
    const before = process.umask(0o000);
    try {
      await writeConfig(file, { api: 'http://127.0.0.1:1', token: 'secret' });
      // An existing file with loose permissions is tightened too.
      await writeConfig(file, { api: 'http://127.0.0.1:2', token: 'secret2' });
    } finally {
      process.umask(before);
    }
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.equal((await stat(path.dirname(file))).mode & 0o777, 0o700);
    assert.deepEqual(await readConfig(file), { api: 'http://127.0.0.1:2', token: 'secret2' });
    assert.deepEqual(JSON.parse(await readFile(file, 'utf8')), { api: 'http://127.0.0.1:2', token: 'secret2' });
  });

  it('is empty when missing and a usage error when broken', async () => {
    assert.deepEqual(await readConfig(path.join(dir, 'missing.json')), {});
    const broken = path.join(dir, 'broken.json');
    await writeFile(broken, '{not json');
    await assert.rejects(readConfig(broken), (e: unknown) => e instanceof UsageError && e.message.includes('not valid JSON'));
    await writeFile(broken, '{"token": 42}');
    await assert.rejects(readConfig(broken), UsageError);
  });

  it('lets a flag beat the environment, and the environment beat the file', () => {
    const stored = { api: 'http://file:1', token: 'file-token', project: 'file-project' };
    assert.deepEqual(resolveConnection(stored, {}, {}), stored);
    assert.deepEqual(resolveConnection(stored, { ORCHESTRATOR_API: 'http://env:2/', ORCHESTRATOR_TOKEN: 'env-token', ORCHESTRATOR_PROJECT: 'p' }, {}), {
      api: 'http://env:2',
      token: 'env-token',
      project: 'p',
    });
    assert.equal(resolveConnection(stored, { ORCHESTRATOR_API: 'http://env:2' }, { api: 'http://flag:3' }).api, 'http://flag:3');
    assert.deepEqual(resolveConnection({}, {}, {}), { api: DEFAULT_API });
    assert.throws(() => resolveConnection({}, { ORCHESTRATOR_API: 'not a url' }, {}), UsageError);
  });
});

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createCipheriv, randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { PROJECT_ROOT } from '../../src/compose.ts';
import { InvalidRequestError } from '../../src/core/errors.ts';
import { rotateSealedSecrets } from '../../src/core/key-rotation.ts';
import { createProjectService } from '../../src/core/projects.ts';
import { redisKeyValueCache } from '../../src/core/key-value-cache.ts';
import { createRegistry } from '../../src/core/registry.ts';
import { spaceBindingTokenAad, userGithubTokenAad, userHfTokenAad } from '../../src/core/sealed-secrets.ts';
import { createSpaceBindings, SpaceBindingUnusableError } from '../../src/core/space-bindings.ts';
import { ensureUser } from '../../src/core/users.ts';
import { isLoopbackUrl } from '../../src/lib/loopback-host.ts';
import { createSecretBox, generateKey, type SecretBox } from '../../src/lib/secret-box.ts';
import { createTestDb, REDIS_TEST_URL, type TestDb } from '../support/test-db.ts';

/** The format written before values were bound to their row: `v1.iv.tag.ciphertext` with the constant AAD "v1". */
function sealV1(key: string, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(key, 'hex'), iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from('v1'));
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

/** `orchestrator keys rotate` as an operator runs it. */
function runRotate(env: Record<string, string>): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts', 'keys', 'rotate'], {
      cwd: PROJECT_ROOT,
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'silent', JWT_SECRET: randomBytes(32).toString('hex'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += String(c)));
    child.stderr.on('data', (c) => (stderr += String(c)));
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('sealed secrets bound to their row, and key rotation', function () {
  const keyA = generateKey();
  const keyB = generateKey();
  const keyC = generateKey();
  let t: TestDb;
  let redis: Redis;
  let userId: string;
  let projectId: string;
  const servers: Record<string, string> = {};
  const networkCalls: string[] = [];

  function bindingsWith(secrets: SecretBox) {
    const projects = createProjectService(t.db);
    return createSpaceBindings({
      db: t.db,
      secrets,
      allowsPlainHttp: isLoopbackUrl,
      // The outbound guard has its own tests; here no address is ever resolved or contacted.
      checkTarget: async () => undefined,
      projects,
      registry: createRegistry({
        db: t.db,
        cache: redisKeyValueCache(redis),
        keyPrefix: `keys-${randomBytes(4).toString('hex')}:`,
        discover: async () => [],
        checkTarget: async () => undefined,
        projectMembers: (id) => projects.memberIds(id),
      }),
      // Binding by URL alone needs neither the Hub nor the Space: any call here is a request that should not happen.
      spaces: {
        info: async (id) => void networkCalls.push(`hub:${id}`),
        isReady: () => true,
        mapTools: () => ({ map: {}, missing: [] }),
      },
      listTools: async ({ url }) => {
        networkCalls.push(`list:${url}`);
        return [];
      },
    });
  }

  const sealedOf = async (server: string) =>
    (await t.db.selectFrom('space_bindings').select('token_sealed').where('project_id', '=', projectId).where('server_id', '=', servers[server]!).executeTakeFirstOrThrow()).token_sealed;

  before(async function () {
    t = await createTestDb('keys');
    redis = new Redis(REDIS_TEST_URL);
    userId = (await ensureUser(t.db, 'keeper')).id;
    projectId = (await createProjectService(t.db).create(userId, { name: 'sealed' })).id;
    for (const name of ['alpha', 'beta']) {
      servers[name] = (await t.db.insertInto('mcp_servers').values({ name, transport: 'auto', can_run_on_user_space: true, fallback_to_oracle: false, cost: 0, enabled: true, created_by: userId }).returning('id').executeTakeFirstOrThrow()).id;
    }
  });

  after(async function () {
    redis?.disconnect();
    await t?.drop();
  });

  beforeEach(() => {
    networkCalls.length = 0;
  });

  it('rotates every sealed value from key A to key B, legacy v1 values included, then opens them with B alone', async function () {
    const underA = bindingsWith(createSecretBox({ current: keyA }));
    await underA.bind(userId, projectId, 'alpha', { url: 'http://127.0.0.1:9/mcp', token: 'tok-alpha' });
    await underA.bind(userId, projectId, 'beta', { url: 'https://space.example/mcp', token: 'tok-beta' });
    await t.db.updateTable('users').set({ hf_token_sealed: sealV1(keyA, 'hf_user_token') }).where('id', '=', userId).execute();
    const github = createSecretBox({ current: keyA }).seal('gho_user_token', userGithubTokenAad(userId));
    await t.db.updateTable('users').set({ github_token_sealed: github }).where('id', '=', userId).execute();
    assert.deepEqual(networkCalls, []);
    assert.match((await sealedOf('alpha'))!, /^v2\./);

    const first = await runRotate({ DATABASE_URL: t.url, ENCRYPTION_KEY: keyB, ENCRYPTION_KEYS_PREVIOUS: `${generateKey()},${keyA}` });
    assert.equal(first.code, 0, first.stderr);
    const box = createSecretBox({ current: keyB });
    assert.equal(first.stdout.trim(), `re-sealed 4 value(s) under key ${box.currentKeyId}; 0 already current`);
    for (const secret of ['tok-alpha', 'tok-beta', 'hf_user_token', 'gho_user_token', keyA, keyB]) assert.equal(`${first.stdout}${first.stderr}`.includes(secret), false);

    const underB = bindingsWith(box);
    assert.equal((await underB.credentials(projectId, servers.alpha!))?.token, 'tok-alpha');
    assert.equal((await underB.credentials(projectId, servers.beta!))?.token, 'tok-beta');
    const user = await t.db.selectFrom('users').select('hf_token_sealed').where('id', '=', userId).executeTakeFirstOrThrow();
    assert.equal(box.open(user.hf_token_sealed!, userHfTokenAad(userId)), 'hf_user_token');
    assert.equal(box.isCurrent(user.hf_token_sealed!), true);
    const gh = await t.db.selectFrom('users').select('github_token_sealed').where('id', '=', userId).executeTakeFirstOrThrow();
    assert.equal(box.open(gh.github_token_sealed!, userGithubTokenAad(userId)), 'gho_user_token');

    const again = await runRotate({ DATABASE_URL: t.url, ENCRYPTION_KEY: keyB, ENCRYPTION_KEYS_PREVIOUS: keyA });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout.trim(), `re-sealed 0 value(s) under key ${box.currentKeyId}; 4 already current`);
  });

  it('a sealed value copied into another row does not open there, and rotation reports it without touching it', async function () {
    const box = createSecretBox({ current: keyB });
    const bindings = bindingsWith(box);
    const alphaSealed = (await sealedOf('alpha'))!;
    assert.equal(box.open(alphaSealed, spaceBindingTokenAad(projectId, servers.alpha!)), 'tok-alpha');
    await t.db.updateTable('space_bindings').set({ token_sealed: alphaSealed }).where('server_id', '=', servers.beta!).execute();

    await assert.rejects(bindings.credentials(projectId, servers.beta!), (err: unknown) => {
      assert.ok(err instanceof SpaceBindingUnusableError);
      assert.equal(err.code, 'SpaceTokenUnreadable');
      assert.equal(err.message.includes('tok-alpha'), false);
      return true;
    });
    const report = await rotateSealedSecrets(t.db, createSecretBox({ current: keyC, previous: [keyB] }));
    assert.deepEqual(report.unreadable, [`space binding ${projectId}/${servers.beta}`]);
    assert.equal(report.resealed, 3, "alpha and the user's Hugging Face and GitHub tokens");
    assert.equal(await sealedOf('beta'), alphaSealed, 'an unreadable value is left as it was');

    const cli = await runRotate({ DATABASE_URL: t.url, ENCRYPTION_KEY: keyC });
    assert.equal(cli.code, 1);
    assert.match(cli.stderr, new RegExp(`1 value\\(s\\) open with none of the keys given[\\s\\S]*space binding ${projectId}/${servers.beta}`));
  });

  it('refuses a token for a plain-http URL off this machine before any request, and stores nothing', async function () {
    const bindings = bindingsWith(createSecretBox({ current: keyC }));
    const before = await sealedOf('beta');
    for (const input of [
      { url: 'http://space.example/mcp', token: 'tok-new' },
      { spaceId: 'someone/space', url: 'http://space.example/gradio_api/mcp/', token: 'tok-new' },
      { url: 'http://10.1.2.3:8080/mcp', token: 'tok-new' },
    ]) {
      await assert.rejects(bindings.bind(userId, projectId, 'beta', input), (err: unknown) => err instanceof InvalidRequestError && err.code === 'InsecureTokenTransport');
    }
    assert.deepEqual(networkCalls, [], 'neither the Hub nor the Space was asked');
    assert.equal(await sealedOf('beta'), before);

    // Rows written before the rule are never used to send their token in the clear.
    await t.db.updateTable('space_bindings').set({ url: 'http://space.example/mcp' }).where('server_id', '=', servers.alpha!).execute();
    await assert.rejects(bindings.credentials(projectId, servers.alpha!), (err: unknown) => err instanceof SpaceBindingUnusableError && err.code === 'InsecureTokenTransport');

    // Without a token, or over https, the same host is fine; loopback may use plain http.
    assert.equal((await bindings.bind(userId, projectId, 'alpha', { url: 'http://space.example/mcp' })).hasToken, false);
    assert.equal((await bindings.bind(userId, projectId, 'alpha', { url: 'http://[::1]:9/mcp', token: 'tok-local' })).hasToken, true);
    assert.equal((await bindings.credentials(projectId, servers.alpha!))?.token, 'tok-local');
    assert.deepEqual(networkCalls, []);
  });
});

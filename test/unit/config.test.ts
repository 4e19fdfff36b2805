import assert from 'node:assert/strict';
import { ConfigError, databaseUrlGiven, loadConfig, requireSharedRedis } from '../../src/config.ts';

const base = { JWT_SECRET: 'x'.repeat(32), ENCRYPTION_KEY: 'a'.repeat(64), DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/orchestrator' };

describe('loadConfig', function () {
  it('applies the documented defaults and freezes the result', function () {
    const c = loadConfig(base);
    assert.equal(c.results.inlineMaxBytes, 1024 * 1024);
    assert.equal(c.limits.maxRequestBytes, 8 * 1024 * 1024);
    assert.equal(c.temporal.namespace, 'default');
    assert.equal(c.task.consentTimeoutMs, 15 * 60_000);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.task));
  });

  it('leaves REDIS_URL unset by default (in process) and requires it for the separate api and worker', function () {
    const alone = loadConfig(base);
    assert.equal(alone.redisUrl, undefined);
    assert.equal(loadConfig({ ...base, REDIS_URL: '' }).redisUrl, undefined, 'empty counts as unset');
    assert.throws(
      () => requireSharedRedis(alone, 'orchestrator worker'),
      (err: unknown) => err instanceof ConfigError && /REDIS_URL: `orchestrator worker` needs a Redis shared/.test(err.message) && err.problems.length === 1,
    );
    const shared = loadConfig({ ...base, REDIS_URL: 'redis://127.0.0.1:6379' });
    assert.equal(shared.redisUrl, 'redis://127.0.0.1:6379');
    assert.doesNotThrow(() => requireSharedRedis(shared, 'orchestrator api'));
    assert.throws(() => loadConfig({ ...base, REDIS_URL: 'not a url' }), /REDIS_URL/);
  });

  it('parses durations with units and treats empty values as unset', function () {
    const c = loadConfig({ ...base, CONSENT_TIMEOUT: '90s', DISPATCH_RETRY_INITIAL: '250ms', TOOL_TIMEOUT: '2m', PORT: '' });
    assert.equal(c.task.consentTimeoutMs, 90_000);
    assert.equal(c.task.retryInitialMs, 250);
    assert.equal(c.task.toolTimeoutMs, 120_000);
    assert.equal(c.port, 8080);
  });

  it('reads the reconciler interval and grace, refusing an interval that would spin', function () {
    assert.deepEqual({ ...loadConfig(base).reconciler }, { intervalMs: 5000, graceMs: 15_000 });
    assert.deepEqual({ ...loadConfig({ ...base, RECONCILE_INTERVAL: '1s', RECONCILE_GRACE: '2m' }).reconciler }, { intervalMs: 1000, graceMs: 120_000 });
    assert.throws(() => loadConfig({ ...base, RECONCILE_INTERVAL: '10ms' }), /RECONCILE_INTERVAL/);
  });

  it('names every bad variable in one error', function () {
    assert.throws(
      () => loadConfig({ ...base, PORT: 'eighty', MAX_CONCURRENT_JOBS: '0', RESULT_STORE: 's3://bucket', CONSENT_TIMEOUT: 'soon' }),
      (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        for (const name of ['PORT', 'MAX_CONCURRENT_JOBS', 'RESULT_STORE', 'CONSENT_TIMEOUT']) assert.match(err.message, new RegExp(name));
        return true;
      },
    );
  });

  it('allows no private outbound targets by default and validates OUTBOUND_ALLOWLIST', function () {
    const c = loadConfig(base);
    assert.deepEqual([c.outbound.allowlist.ranges.length, c.outbound.allowlist.hosts.length], [0, 0]);
    assert.equal(c.nodeEnv, 'development');
    const l = loadConfig({ ...base, OUTBOUND_ALLOWLIST: '127.0.0.0/8,::1/128,mcp.internal:8080', NODE_ENV: 'production' });
    assert.deepEqual([l.outbound.allowlist.ranges.length, l.outbound.allowlist.hosts.length], [2, 1]);
    assert.equal(l.nodeEnv, 'production');
    assert.throws(() => loadConfig({ ...base, OUTBOUND_ALLOWLIST: '127.0.0.0/8,localhost' }), /OUTBOUND_ALLOWLIST: .*"localhost"/);
  });

  it('requires a signing key and an encryption key', function () {
    assert.throws(() => loadConfig({ ENCRYPTION_KEY: base.ENCRYPTION_KEY }), /JWT_SECRET/);
    assert.throws(() => loadConfig({ JWT_SECRET: base.JWT_SECRET }), /ENCRYPTION_KEY: is required/);
    assert.throws(() => loadConfig({ ...base, JWT_SECRET: 'short' }), /JWT_SECRET/);
  });

  it('needs DATABASE_URL, and says that only dev runs without one', function () {
    const { DATABASE_URL: _, ...noUrl } = base;
    assert.throws(() => loadConfig(noUrl), (err: unknown) => err instanceof ConfigError && err.problems.length === 1 && /^DATABASE_URL: not set\..*only dev runs an embedded Postgres/.test(err.problems[0]!));
    assert.throws(() => loadConfig({ ...base, DATABASE_URL: 'not a url' }), /DATABASE_URL/);
    assert.equal(databaseUrlGiven(noUrl), false);
    assert.equal(databaseUrlGiven({ ...noUrl, DATABASE_URL: '' }), false);
    assert.equal(databaseUrlGiven(base), true);
  });

  it('reads previous encryption keys as a comma list and names a bad one by position, never by value', function () {
    assert.deepEqual(loadConfig(base).encryptionKeysPrevious, []);
    const b64 = Buffer.alloc(32, 7).toString('base64');
    assert.deepEqual(loadConfig({ ...base, ENCRYPTION_KEYS_PREVIOUS: ` ${'b'.repeat(64)}, ${b64} ,` }).encryptionKeysPrevious, ['b'.repeat(64), b64]);
    assert.throws(
      () => loadConfig({ ...base, ENCRYPTION_KEYS_PREVIOUS: `${'b'.repeat(64)},tooshortsecret` }),
      (err: unknown) => err instanceof ConfigError && /ENCRYPTION_KEYS_PREVIOUS: key 2 must be 32 bytes/.test(err.message) && !err.message.includes('tooshortsecret'),
    );
  });

  it('reads the per-tenant limits, on by default, and refuses a window that is not whole seconds', function () {
    const c = loadConfig(base);
    assert.deepEqual(
      { ...c.rateLimits },
      { enabled: true, windowSeconds: 60, requestsPerUser: 600, submissionsPerUser: 120, anonymousPerIp: 300, activeTasksPerProject: 100, streamsPerUser: 20 },
    );
    const off = loadConfig({ ...base, RATE_LIMITS: 'off', RATE_LIMIT_WINDOW: '10s', MAX_SSE_STREAMS_PER_USER: '3' });
    assert.equal(off.rateLimits.enabled, false);
    assert.equal(off.rateLimits.windowSeconds, 10);
    assert.equal(off.rateLimits.streamsPerUser, 3);
    assert.throws(() => loadConfig({ ...base, RATE_LIMIT_WINDOW: '1500ms' }), /RATE_LIMIT_WINDOW/);
    assert.throws(() => loadConfig({ ...base, RATE_LIMITS: 'false' }), /RATE_LIMITS/);
    assert.throws(() => loadConfig({ ...base, RATE_LIMIT_REQUESTS: '0' }), /RATE_LIMIT_REQUESTS/);
  });
});

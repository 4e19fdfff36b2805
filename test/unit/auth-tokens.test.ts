import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import Koa from 'koa';
import { createServer } from 'node:http';
import { SignJWT, exportJWK, generateKeyPair } from 'jose';
import { authenticate } from '../../src/api/authenticate.ts';
import { problemMiddleware } from '../../src/api/problem.ts';
import { InvalidTokenError, createTokenService } from '../../src/core/auth-tokens.ts';
import { createLogger } from '../../src/lib/logger.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const ISSUER = 'orchestrator-test';
const AUDIENCE = 'orchestrator-api';

function service(overrides: Partial<Parameters<typeof createTokenService>[0]> = {}) {
  return createTokenService({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 900, ...overrides });
}

async function rejection(promise: Promise<unknown>): Promise<InvalidTokenError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof InvalidTokenError, `expected InvalidTokenError, got ${String(err)}`);
    return err;
  }
  assert.fail('token was accepted');
}

// Signs with full control over claims, as a token from elsewhere would arrive.
function rawToken(opts: { secret?: string; iat?: number; exp?: number; iss?: string; aud?: string; login?: unknown; sub?: string }) {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT(opts.login === undefined ? {} : { login: opts.login })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(opts.iat ?? now)
    .setExpirationTime(opts.exp ?? now + 600)
    .setIssuer(opts.iss ?? ISSUER)
    .setAudience(opts.aud ?? AUDIENCE);
  if (opts.sub !== undefined) jwt.setSubject(opts.sub);
  return jwt.sign(new TextEncoder().encode(opts.secret ?? SECRET));
}

describe('createTokenService', () => {
  it('signs a token that verifies back to the same user', async () => {
    const tokens = service();
    const token = await tokens.sign({ sub: 'user-1', login: 'ada' });
    assert.equal(token.split('.').length, 3);
    assert.deepEqual(await tokens.verify(token), { userId: 'user-1', login: 'ada' });
  });

  it('rejects an expired token, but tolerates a little clock skew', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await rawToken({ sub: 'u', login: 'ada', iat: now - 120, exp: now - 60 });
    assert.equal((await rejection(service().verify(expired))).reason, 'token expired');
    const justExpired = await rawToken({ sub: 'u', login: 'ada', iat: now - 120, exp: now - 2 });
    assert.deepEqual(await service().verify(justExpired), { userId: 'u', login: 'ada' });
  });

  it('rejects a token signed with another secret', async () => {
    const other = service({ secret: 'another-secret-that-is-also-long-enough' });
    const token = await other.sign({ sub: 'u', login: 'ada' });
    assert.equal((await rejection(service().verify(token))).reason, 'signature invalid');
  });

  it('rejects a tampered payload', async () => {
    const token = await service().sign({ sub: 'user-1', login: 'ada' });
    const [header, payload, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    claims.sub = 'admin';
    const forged = [header, Buffer.from(JSON.stringify(claims)).toString('base64url'), signature].join('.');
    const err = await rejection(service().verify(forged));
    assert.equal(err.reason, 'signature invalid');
    assert.doesNotMatch(err.message, new RegExp(SECRET));
  });

  it('rejects an unsigned (alg none) token and garbage', async () => {
    const token = await service().sign({ sub: 'user-1', login: 'ada' });
    const none = `${Buffer.from('{"alg":"none"}').toString('base64url')}.${token.split('.')[1]}.`;
    await rejection(service().verify(none));
    for (const garbage of ['', 'abc', 'a.b.c', '...']) await rejection(service().verify(garbage));
  });

  it('rejects the wrong issuer or audience and missing claims', async () => {
    await rejection(service().verify(await rawToken({ sub: 'u', login: 'ada', iss: 'someone-else' })));
    await rejection(service().verify(await rawToken({ sub: 'u', login: 'ada', aud: 'another-api' })));
    await rejection(service().verify(await rawToken({ login: 'ada' })));
    await rejection(service().verify(await rawToken({ sub: 'u', login: 42 })));
  });

  it('refuses to sign without a secret and refuses weak or missing keys', async () => {
    const verifyOnly = createTokenService({ jwksUrl: 'http://127.0.0.1:1/jwks.json', issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 });
    await assert.rejects(verifyOnly.sign({ sub: 'u', login: 'ada' }), /signing needs JWT_SECRET/);
    assert.throws(() => service({ secret: 'short' }), /at least 32/);
    assert.throws(() => createTokenService({ issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 }), /JWT secret, signing keys or a JWKS URL/);
  });
});

describe('createTokenService with a JWKS URL', () => {
  let jwksUrl: string;
  let server: ReturnType<typeof createServer>;
  let privateKey: CryptoKey;

  before(async () => {
    const pair = await generateKeyPair('ES256');
    privateKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' };
    server = createServer((_req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys: [jwk] }));
    });
    server.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    jwksUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  const issued = (key: CryptoKey) =>
    new SignJWT({ login: 'ada' })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('user-ext')
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(key);

  it('verifies a token signed by a key from the key set', async () => {
    const tokens = createTokenService({ jwksUrl, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 });
    assert.deepEqual(await tokens.verify(await issued(privateKey)), { userId: 'user-ext', login: 'ada' });
  });

  it('rejects a token from another key and an HS256 token', async () => {
    const tokens = createTokenService({ jwksUrl, issuer: ISSUER, audience: AUDIENCE, ttlSeconds: 60 });
    const stranger = await generateKeyPair('ES256');
    assert.equal((await rejection(tokens.verify(await issued(stranger.privateKey)))).reason, 'signature invalid');
    await rejection(tokens.verify(await rawToken({ sub: 'u', login: 'ada' })));
  });
});

describe('authenticate', () => {
  let baseUrl: string;
  let server: ReturnType<Koa['listen']>;
  const tokens = service();

  before(async () => {
    const app = new Koa();
    app.use(problemMiddleware({ log: createLogger({ level: 'silent' }) }));
    app.use(authenticate(tokens));
    app.use((ctx) => {
      ctx.body = ctx.state.user;
    });
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sets ctx.state.user from a valid bearer token', async () => {
    const token = await tokens.sign({ sub: 'user-9', login: 'grace' });
    const res = await fetch(baseUrl, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), { id: 'user-9', login: 'grace' });
  });

  it('answers 401 Unauthenticated with WWW-Authenticate when no bearer token is sent', async () => {
    for (const headers of [{}, { Authorization: 'Basic dXNlcjpwYXNz' }] as Array<Record<string, string>>) {
      const res = await fetch(baseUrl, { headers });
      assert.equal(res.status, 401);
      assert.equal(res.headers.get('www-authenticate'), 'Bearer');
      assert.equal((await res.json()).code, 'Unauthenticated');
    }
  });

  it('answers 401 InvalidToken for an expired, forged or malformed token', async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await rawToken({ sub: 'u', login: 'ada', iat: now - 120, exp: now - 60 });
    const forged = await rawToken({ sub: 'u', login: 'ada', secret: 'forged-secret-forged-secret-forged-secret' });
    for (const header of [`Bearer ${expired}`, `Bearer ${forged}`, 'Bearer not-a-jwt', 'Bearer ', 'Bearer a b']) {
      const res = await fetch(baseUrl, { headers: { Authorization: header } });
      assert.equal(res.status, 401, header);
      assert.match(res.headers.get('www-authenticate') ?? '', /^Bearer error="invalid_token"/);
      const body = await res.json();
      assert.equal(body.code, 'InvalidToken', header);
    }
    const res = await fetch(baseUrl, { headers: { Authorization: `Bearer ${expired}` } });
    assert.equal((await res.json()).detail, 'token expired');
  });
});

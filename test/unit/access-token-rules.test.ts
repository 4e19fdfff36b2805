import assert from 'node:assert/strict';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, importJWK, jwtVerify } from 'jose';
import { InvalidTokenError, MAX_ACCESS_TOKEN_SECONDS, createConfiguredTokenService, createTokenService } from '../../src/core/auth-tokens.ts';
import { loadSigningKeys } from '../../src/core/signing-keys.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256';
const base = { issuer: 'orch', audience: 'orch-api', ttlSeconds: 600 };

async function refused(p: Promise<unknown>, reason: RegExp) {
  await assert.rejects(p, (err: unknown) => err instanceof InvalidTokenError && reason.test(err.reason));
}

async function privateJwk(kid: string) {
  const { privateKey } = await generateKeyPair('ES256', { extractable: true });
  return { ...(await exportJWK(privateKey)), kid };
}

describe('access token rules', () => {
  it('access tokens carry iss, aud, sub, iat, exp and a unique jti, and live at most 15 minutes', async () => {
    const tokens = createTokenService({ secret: SECRET, ...base });
    const [a, b] = [await tokens.sign({ sub: 'u1', login: 'ada' }), await tokens.sign({ sub: 'u1', login: 'ada' })];
    const claims = decodeJwt(a);
    assert.equal(claims.iss, 'orch');
    assert.equal(claims.aud, 'orch-api');
    assert.equal(claims.sub, 'u1');
    assert.equal(claims.exp! - claims.iat!, 600);
    assert.match(String(claims.jti), /^[0-9a-f-]{36}$/);
    assert.notEqual(decodeJwt(b).jti, claims.jti);
    assert.equal(MAX_ACCESS_TOKEN_SECONDS, 900);
    assert.throws(() => createTokenService({ secret: SECRET, ...base, ttlSeconds: 901 }), /at most 900/);
  });

  it('refuses a token issued in the future, and one with no iat', async () => {
    const tokens = createTokenService({ secret: SECRET, ...base });
    const now = Math.floor(Date.now() / 1000);
    const key = new TextEncoder().encode(SECRET);
    const future = await new SignJWT({ login: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setIssuer('orch').setAudience('orch-api').setIssuedAt(now + 3600).setExpirationTime(now + 4000).sign(key);
    await refused(tokens.verify(future), /future|claims/);
    const noIat = await new SignJWT({ login: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setIssuer('orch').setAudience('orch-api').setExpirationTime(now + 60).sign(key);
    await refused(tokens.verify(noIat), /claims/);
    // Within the clock tolerance is fine.
    const slightlyAhead = await new SignJWT({ login: 'ada' }).setProtectedHeader({ alg: 'HS256' }).setSubject('u1').setIssuer('orch').setAudience('orch-api').setIssuedAt(now + 2).setExpirationTime(now + 60).sign(key);
    assert.equal((await tokens.verify(slightlyAhead)).userId, 'u1');
  });

  it('refuses a token whose subject is no user', async () => {
    const known = new Set(['u1']);
    const tokens = createTokenService({ secret: SECRET, ...base, subjectExists: async (sub) => known.has(sub) });
    assert.equal((await tokens.verify(await tokens.sign({ sub: 'u1', login: 'ada' }))).userId, 'u1');
    await refused(tokens.verify(await tokens.sign({ sub: 'u2', login: 'bob' })), /unknown subject/);
    const early = await tokens.sign({ sub: 'u1', login: 'ada' });
    known.delete('u1');
    await refused(tokens.verify(early), /unknown subject/);
  });

  it('ES256 with configured keys: signs with the first key, publishes only public halves, verifies after rotation', async () => {
    const k1 = await privateJwk('k1');
    const k2 = await privateJwk('k2');
    const before = await createConfiguredTokenService({ ...base, signingKeysJson: JSON.stringify({ keys: [k1] }) });
    const oldToken = await before.sign({ sub: 'u1', login: 'ada' });
    assert.deepEqual(decodeProtectedHeader(oldToken), { alg: 'ES256', typ: 'JWT', kid: 'k1' });

    // Rotation: the new key goes first, the old one stays listed until its tokens have expired.
    const after = await createConfiguredTokenService({ ...base, secret: SECRET, signingKeysJson: JSON.stringify([k2, k1]) });
    const newToken = await after.sign({ sub: 'u1', login: 'ada' });
    assert.equal(decodeProtectedHeader(newToken).kid, 'k2');
    assert.equal((await after.verify(oldToken)).userId, 'u1');
    assert.equal((await after.verify(newToken)).userId, 'u1');

    const jwks = after.publicJwks();
    assert.deepEqual(jwks.keys.map((k) => k.kid), ['k2', 'k1']);
    for (const k of jwks.keys) assert.ok(!('d' in k), 'no private member is published');
    // Another service verifies with the published set alone.
    const published = await importJWK(jwks.keys[0] as never, 'ES256');
    assert.equal((await jwtVerify(newToken, published, { issuer: 'orch', audience: 'orch-api' })).payload.sub, 'u1');

    // With keys configured, an HS256 token made with the shared secret is not accepted.
    const hs = await createTokenService({ secret: SECRET, ...base }).sign({ sub: 'u1', login: 'ada' });
    await refused(after.verify(hs), /algorithm|signature|key/);
    // A key dropped from the list no longer verifies its tokens.
    const dropped = await createConfiguredTokenService({ ...base, signingKeysJson: JSON.stringify([k2]) });
    await refused(dropped.verify(oldToken), /key/);
  });

  it('refuses malformed signing key configuration, naming the key by position only', async () => {
    const k1 = await privateJwk('k1');
    await assert.rejects(loadSigningKeys('not json'), /not JSON/);
    await assert.rejects(loadSigningKeys('[]'), /at least one key/);
    await assert.rejects(loadSigningKeys(JSON.stringify([{ ...k1, kid: undefined }])), /key 1 needs a kid/);
    await assert.rejects(loadSigningKeys(JSON.stringify([k1, k1])), /key 2 repeats/);
    const { d: _d, ...publicOnly } = k1;
    await assert.rejects(loadSigningKeys(JSON.stringify([publicOnly])), (err: Error) => /key 1 must be a private P-256/.test(err.message) && !err.message.includes(String(k1.x)));
  });
});

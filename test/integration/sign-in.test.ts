import assert from 'node:assert/strict';
import { OAuth2Server } from 'oauth2-mock-server';
import { startLocalGithub, type LocalGithub } from '../support/local-github.ts';
import { startStack, type Stack } from '../support/stack.ts';

// Sign-in end to end against local providers speaking the real protocols: a GitHub stand-in for the OAuth web flow
// and oauth2-mock-server as the Hub's OpenID Connect provider (discovery, ID tokens, PKCE checks).

describe('sign-in with GitHub and Hugging Face', function () {
  let stack: Stack;
  let github: LocalGithub;
  let hub: OAuth2Server;
  let hubUser = { sub: 'hf-1', preferred_username: 'ada-hf', name: 'Ada on the Hub' };

  before(async function () {
    github = await startLocalGithub({ clientId: 'gh-client', clientSecret: 'gh-secret' });
    hub = new OAuth2Server();
    await hub.issuer.keys.generate('RS256');
    await hub.start(0, '127.0.0.1');
    hub.service.on('beforeTokenSigning', (token: { payload: Record<string, unknown> }) => {
      Object.assign(token.payload, hubUser);
    });
    stack = await startStack({
      worker: false,
      env: {
        GITHUB_CLIENT_ID: 'gh-client',
        GITHUB_CLIENT_SECRET: 'gh-secret',
        GITHUB_URL: github.url,
        GITHUB_API_URL: github.url,
        HF_CLIENT_ID: 'hf-client',
        HF_CLIENT_SECRET: 'hf-secret',
        HF_OAUTH_ISSUER: hub.issuer.url!,
      },
    });
  });

  after(async function () {
    await stack?.stop();
    await github?.stop();
    await hub?.stop();
  });

  const userCount = async () => Number((await stack.world.db.selectFrom('users').select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

  /** Follows the login redirect to the provider and back; returns our callback URL as the provider built it. */
  async function authorize(provider: string, bearer?: string): Promise<URL> {
    const login = await fetch(`${stack.url}/v1/auth/${provider}/login`, { redirect: 'manual', headers: bearer ? { Authorization: `Bearer ${bearer}` } : {} });
    assert.equal(login.status, 302, await login.text());
    const atProvider = new URL(login.headers.get('location')!);
    assert.equal(atProvider.searchParams.get('code_challenge_method'), 'S256');
    assert.ok(atProvider.searchParams.get('state')!.length >= 32);
    const back = await fetch(atProvider, { redirect: 'manual' });
    assert.equal(back.status, 302);
    const callback = new URL(back.headers.get('location')!);
    assert.equal(callback.origin, stack.url);
    return callback;
  }

  const callback = (url: URL) => stack.api('GET', `${url.pathname}${url.search}`);

  it('lists the configured providers', async function () {
    const res = await stack.api('GET', '/v1/auth/providers');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body.items.map((p: { name: string }) => p.name), ['github', 'huggingface']);
    assert.equal(res.body.items[0].loginUrl, `${stack.url}/v1/auth/github/login`);
  });

  it('GitHub: a first sign-in creates the user, stores the GitHub token sealed and issues working tokens', async function () {
    github.signInAs({ id: 101, login: 'ada', name: 'Ada Lovelace' });
    const res = await callback(await authorize('github'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.body.tokenType, 'Bearer');
    assert.ok(res.body.expiresIn <= 900);
    assert.match(res.body.refreshToken, /^ort_/);
    assert.equal(res.body.user.login, 'ada');
    // The verifier the provider got matches the challenge it was shown (the stand-in checked it); the secret went in the form.
    assert.ok(github.tokenRequests.at(-1)!.code_verifier!.length >= 43);

    const me = await stack.api('GET', '/v1/me', { token: res.body.accessToken });
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.login, 'ada');
    assert.equal(me.body.displayName, 'Ada Lovelace');
    assert.deepEqual(me.body.identities.map((i: { provider: string; login: string }) => [i.provider, i.login]), [['github', 'ada']]);

    const row = await stack.world.db.selectFrom('users').select(['github_token_sealed']).where('id', '=', res.body.user.id).executeTakeFirstOrThrow();
    assert.ok(row.github_token_sealed && !row.github_token_sealed.includes(github.issuedTokens.at(-1)!), 'the GitHub token is stored sealed');
    // Refresh tokens are stored as hashes only.
    const stored = await stack.world.db.selectFrom('refresh_tokens').select('token_hash').where('user_id', '=', res.body.user.id).execute();
    assert.equal(stored.length, 1);
    assert.notEqual(stored[0]!.token_hash, res.body.refreshToken);

    const audit = await stack.world.audit.list({ actorUserId: res.body.user.id, action: 'auth.sign_in', limit: 10 });
    assert.equal(audit.entries.length, 1);
    assert.deepEqual(audit.entries[0]!.detail, { provider: 'github', providerLogin: 'ada', newUser: true });
    assert.ok(!JSON.stringify(audit.entries).includes('gho_'), 'no token in the audit trail');
  });

  it('GitHub: signing in again is the same user', async function () {
    github.signInAs({ id: 101, login: 'ada', name: 'Ada Lovelace' });
    const before = await userCount();
    const res = await callback(await authorize('github'));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.user.login, 'ada');
    assert.equal(await userCount(), before);
  });

  it('refuses a replayed callback, a bad or missing state, and creates no user', async function () {
    github.signInAs({ id: 202, login: 'eve', name: null });
    const before = await userCount();
    const url = await authorize('github');
    const forged = new URL(url);
    forged.searchParams.set('state', 'x'.repeat(43));
    const bad = await callback(forged);
    assert.equal(bad.status, 400);
    assert.equal(bad.body.code, 'InvalidState');
    const noState = new URL(url);
    noState.searchParams.delete('state');
    assert.equal((await callback(noState)).body.code, 'InvalidState');
    // The right callback once works; the same callback again (state and code replayed) does not.
    assert.equal((await callback(url)).status, 200);
    const replay = await callback(url);
    assert.equal(replay.status, 400);
    assert.equal(replay.body.code, 'InvalidState');
    assert.equal(replay.headers.get('content-type'), 'application/problem+json');
    // A state started for GitHub is not accepted on the Hub's callback.
    const other = await authorize('github');
    const crossed = await stack.api('GET', `/v1/auth/huggingface/callback${other.search}`);
    assert.equal(crossed.status, 400);
    assert.equal(await userCount(), before + 1);
  });

  it('refuses a code redeemed with the wrong PKCE verifier (a code injected into another sign-in)', async function () {
    github.signInAs({ id: 303, login: 'mallory', name: null });
    const before = await userCount();
    const victim = await authorize('github');
    const attacker = await authorize('github');
    // The attacker's code with the victim's state: the victim's verifier does not match the attacker's challenge.
    const injected = new URL(victim);
    injected.searchParams.set('code', attacker.searchParams.get('code')!);
    const res = await callback(injected);
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.code, 'SignInRefused');
    assert.ok(!res.text.includes('code_verifier does not match'), 'the provider description is not echoed');
    assert.equal(await userCount(), before);
  });

  it('a provider error in the callback is a 400 and creates no user', async function () {
    const before = await userCount();
    github.denyNext();
    const url = await authorize('github');
    assert.equal(url.searchParams.get('error'), 'access_denied');
    const res = await callback(url);
    assert.equal(res.status, 400);
    assert.equal(res.body.code, 'SignInRefused');
    assert.match(res.body.detail, /access_denied/);
    assert.equal(await userCount(), before);
  });

  it('an unknown provider is 404', async function () {
    const res = await stack.api('GET', '/v1/auth/gitlab/login');
    assert.equal(res.status, 404);
    assert.equal(res.body.code, 'UnknownProvider');
  });

  it('Hugging Face (OIDC): signs in a new user from the ID token, with the Hub token sealed for Space access', async function () {
    hubUser = { sub: 'hf-777', preferred_username: 'grace', name: 'Grace Hopper' };
    const url = await authorize('huggingface');
    const res = await callback(url);
    assert.equal(res.status, 200, res.text);
    assert.equal(res.body.user.login, 'grace');
    const row = await stack.world.db.selectFrom('users').select(['hf_token_sealed']).where('id', '=', res.body.user.id).executeTakeFirstOrThrow();
    assert.ok(row.hf_token_sealed?.startsWith('v2.'));
    const identity = await stack.world.db.selectFrom('user_identities').selectAll().where('user_id', '=', res.body.user.id).executeTakeFirstOrThrow();
    assert.deepEqual([identity.provider, identity.subject, identity.login], ['huggingface', 'hf-777', 'grace']);
  });

  it('Hugging Face: a wrong PKCE verifier is refused by the provider, and no user is created', async function () {
    hubUser = { sub: 'hf-888', preferred_username: 'intruder', name: 'x' };
    const before = await userCount();
    const victim = await authorize('huggingface');
    const attacker = await authorize('huggingface');
    const injected = new URL(victim);
    injected.searchParams.set('code', attacker.searchParams.get('code')!);
    const res = await callback(injected);
    assert.equal(res.status, 400, res.text);
    assert.equal(res.body.code, 'SignInRefused');
    assert.equal(await userCount(), before);
  });

  it('a signed-in user links the other provider to the same account', async function () {
    github.signInAs({ id: 404, login: 'linus', name: 'Linus' });
    const first = await callback(await authorize('github'));
    assert.equal(first.status, 200, first.text);
    const before = await userCount();
    hubUser = { sub: 'hf-404', preferred_username: 'linus-on-hub', name: 'Linus' };
    const linked = await callback(await authorize('huggingface', first.body.accessToken));
    assert.equal(linked.status, 200, linked.text);
    assert.equal(linked.body.user.id, first.body.user.id);
    assert.equal(await userCount(), before);
    const me = await stack.api('GET', '/v1/me', { token: linked.body.accessToken });
    assert.deepEqual(me.body.identities.map((i: { provider: string; login: string }) => [i.provider, i.login]), [['github', 'linus'], ['huggingface', 'linus-on-hub']]);
    // Signing in with the Hub alone now reaches the same user.
    const viaHub = await callback(await authorize('huggingface'));
    assert.equal(viaHub.body.user.id, first.body.user.id);
    const audit = await stack.world.audit.list({ actorUserId: first.body.user.id, action: 'auth.identity_linked', limit: 10 });
    assert.deepEqual(audit.entries.map((e) => e.detail), [{ provider: 'huggingface', providerLogin: 'linus-on-hub' }]);
    // A Hub account that already belongs to someone cannot be linked to another user.
    github.signInAs({ id: 405, login: 'other', name: null });
    const otherUser = await callback(await authorize('github'));
    const taken = await callback(await authorize('huggingface', otherUser.body.accessToken));
    assert.equal(taken.status, 409);
    assert.equal(taken.body.code, 'IdentityTaken');
  });

  it('linking with a bad bearer is refused, not silently turned into a sign-in', async function () {
    const res = await stack.api('GET', '/v1/auth/huggingface/login', { token: 'not.a.token' });
    assert.equal(res.status, 401);
  });

  it('refresh rotates the token; reusing a rotated one revokes the whole family', async function () {
    github.signInAs({ id: 505, login: 'rita', name: null });
    const signedIn = (await callback(await authorize('github'))).body;
    const r1 = await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: signedIn.refreshToken } });
    assert.equal(r1.status, 200, r1.text);
    assert.notEqual(r1.body.refreshToken, signedIn.refreshToken);
    assert.equal((await stack.api('GET', '/v1/me', { token: r1.body.accessToken })).status, 200);
    const r2 = await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: r1.body.refreshToken } });
    assert.equal(r2.status, 200);
    // The first token again: reuse. It fails, and so does the newest token of the family.
    const reuse = await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: signedIn.refreshToken } });
    assert.equal(reuse.status, 401);
    assert.equal(reuse.body.code, 'InvalidRefreshToken');
    const after = await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: r2.body.refreshToken } });
    assert.equal(after.status, 401);
    const audit = await stack.world.audit.list({ actorUserId: signedIn.user.id, action: 'auth.refresh_reuse_detected', limit: 10 });
    assert.equal(audit.entries.length, 1);
    assert.equal(audit.entries[0]!.target?.type, 'refresh_token_family');
  });

  it('logout revokes the refresh token; bad bodies are 400 problems', async function () {
    github.signInAs({ id: 606, login: 'lou', name: null });
    const signedIn = (await callback(await authorize('github'))).body;
    assert.equal((await stack.api('POST', '/v1/auth/logout', { body: { refreshToken: signedIn.refreshToken } })).status, 204);
    assert.equal((await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: signedIn.refreshToken } })).status, 401);
    assert.equal((await stack.api('POST', '/v1/auth/logout', { body: { refreshToken: signedIn.refreshToken } })).status, 204);
    const audit = await stack.world.audit.list({ actorUserId: signedIn.user.id, action: 'auth.logout', limit: 10 });
    assert.equal(audit.entries.length, 1, "a second logout records nothing");
    for (const body of [{}, { refreshToken: 42 }, { refreshToken: 'a b' }, { refreshToken: 'x'.repeat(600) }]) {
      const res = await stack.api('POST', '/v1/auth/refresh', { body });
      assert.equal(res.status, 400, JSON.stringify(body));
      assert.equal(res.headers.get('content-type'), 'application/problem+json');
    }
    assert.equal((await stack.api('POST', '/v1/auth/refresh', { body: { refreshToken: 'ort_unknown' } })).status, 401);
  });

  it('an access token whose user is gone is refused', async function () {
    github.signInAs({ id: 707, login: 'gone', name: null });
    const signedIn = (await callback(await authorize('github'))).body;
    await stack.world.db.deleteFrom('users').where('id', '=', signedIn.user.id).execute();
    const res = await stack.api('GET', '/v1/me', { token: signedIn.accessToken });
    assert.equal(res.status, 401);
    assert.equal(res.body.code, 'InvalidToken');
  });

  it('publishes an empty key set with HS256', async function () {
    const res = await stack.api('GET', '/.well-known/jwks.json');
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, { keys: [] });
  });
});

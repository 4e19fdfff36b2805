import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

// A stand-in for GitHub's OAuth web flow on 127.0.0.1, speaking its wire protocol: GET /login/oauth/authorize
// redirects back with `code` and `state` (or `error=access_denied`); POST /login/oauth/access_token takes a form,
// checks client credentials, redirect_uri and the PKCE verifier, and answers JSON — 200 with an `error` member for a
// bad code, as GitHub does; GET /user answers the account for a bearer access token.

export interface GithubAccount {
  id: number;
  login: string;
  name: string | null;
}

export interface LocalGithub {
  url: string;
  /** The account the next authorization signs in as. */
  signInAs(account: GithubAccount): void;
  /** The next authorization is denied by the user (error=access_denied). */
  denyNext(): void;
  /** Access tokens issued, newest last. */
  issuedTokens: string[];
  /** Token requests received (their form fields, secrets left out). */
  tokenRequests: Array<Record<string, string>>;
  stop(): Promise<void>;
}

export async function startLocalGithub(opts: { clientId: string; clientSecret: string }): Promise<LocalGithub> {
  let account: GithubAccount = { id: 1, login: 'octocat', name: 'The Octocat' };
  let deny = false;
  const codes = new Map<string, { account: GithubAccount; challenge: string; method: string; redirectUri: string; used: boolean }>();
  const tokens = new Map<string, GithubAccount>();
  const issuedTokens: string[] = [];
  const tokenRequests: Array<Record<string, string>> = [];

  const json = (res: http.ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
    res.end(JSON.stringify(body));
  };

  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method === 'GET' && url.pathname === '/login/oauth/authorize') {
      const q = url.searchParams;
      const redirectUri = q.get('redirect_uri');
      if (q.get('client_id') !== opts.clientId || !redirectUri) return json(res, 404, { message: 'Not Found' });
      const back = new URL(redirectUri);
      if (deny) {
        deny = false;
        back.searchParams.set('error', 'access_denied');
        back.searchParams.set('error_description', 'The user has denied your application access.');
      } else {
        const code = randomBytes(10).toString('hex');
        codes.set(code, { account, challenge: q.get('code_challenge') ?? '', method: q.get('code_challenge_method') ?? 'plain', redirectUri, used: false });
        back.searchParams.set('code', code);
      }
      if (q.get('state')) back.searchParams.set('state', q.get('state')!);
      res.writeHead(302, { location: back.href });
      return res.end();
    }
    if (req.method === 'POST' && url.pathname === '/login/oauth/access_token') {
      let raw = '';
      for await (const chunk of req) raw += chunk;
      const form = Object.fromEntries(new URLSearchParams(raw));
      const { client_secret: _secret, ...logged } = form;
      tokenRequests.push(logged);
      if (form.client_id !== opts.clientId || form.client_secret !== opts.clientSecret) return json(res, 200, { error: 'incorrect_client_credentials' });
      const grant = codes.get(form.code ?? '');
      if (!grant || grant.used || grant.redirectUri !== form.redirect_uri) return json(res, 200, { error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' });
      grant.used = true;
      const verifier = form.code_verifier ?? '';
      const expected = grant.method === 'S256' ? createHash('sha256').update(verifier).digest('base64url') : verifier;
      if (grant.challenge === '' || expected !== grant.challenge) return json(res, 200, { error: 'bad_verification_code', error_description: 'The code_verifier does not match.' });
      const token = `gho_${randomBytes(18).toString('hex')}`;
      tokens.set(token, grant.account);
      issuedTokens.push(token);
      return json(res, 200, { access_token: token, token_type: 'bearer', scope: 'read:user' });
    }
    if (req.method === 'GET' && url.pathname === '/user') {
      const bearer = /^(?:Bearer|token) (\S+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const who = bearer ? tokens.get(bearer) : undefined;
      if (!who) return json(res, 401, { message: 'Requires authentication' });
      return json(res, 200, { id: who.id, login: who.login, name: who.name, type: 'User' });
    }
    json(res, 404, { message: 'Not Found' });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    signInAs: (a) => {
      account = a;
    },
    denyNext: () => {
      deny = true;
    },
    issuedTokens,
    tokenRequests,
    async stop() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

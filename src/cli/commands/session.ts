import os from 'node:os';
import type { Command } from 'commander';
import type { Run } from '../context.ts';
import { isLoopbackApi, mintDevToken } from '../dev-token.ts';
import { UsageError } from '../exit-codes.ts';
import { readTextSource } from '../task-arguments.ts';

const LOGIN_NAME = /^[A-Za-z0-9][\w.-]{0,62}$/;

/** The claims a person cares about, read without verifying: the API verifies, this only names who you are. */
export function tokenClaims(token: string): { login?: string; sub?: string; exp?: number } {
  try {
    const payload = token.split('.')[1];
    return payload ? (JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { login?: string; sub?: string; exp?: number }) : {};
  } catch {
    return {};
  }
}

function localLogin(given: string | undefined): string {
  const name = given ?? os.userInfo().username.replace(/[^\w.-]/g, '');
  if (!LOGIN_NAME.test(name)) throw new UsageError(`"${name}" cannot be a login (letters, digits, . _ -): pass --as NAME`);
  return name;
}

export function registerSessionCommands(program: Command, run: Run): void {
  program
    .command('login')
    .description('store the API address and a token in the config file (0600)')
    .option('--token <token>', 'a bearer token (JWT) issued for you')
    .option('--token-stdin', 'read the token from stdin (keeps it out of shell history)')
    .option('--as <login>', 'with no token and a local API: the local user to sign in as (default: your OS user name)')
    .addHelpText('after', '\nExamples:\n  $ orchestrator login                                   # local API: a dev token for your OS user\n  $ orchestrator login --api https://orch.example.com --token-stdin < token.txt')
    .action(
      run(async (ctx, opts: { token?: string; tokenStdin?: boolean; as?: string }) => {
        const api = ctx.connection.api;
        let token = opts.token ?? (opts.tokenStdin ? (await readTextSource({ stdin: true })).trim() : undefined);
        if (!token) {
          if (!isLoopbackApi(api)) throw new UsageError(`${api} is not on this machine: pass --token or --token-stdin`);
          token = await mintDevToken(localLogin(opts.as), ctx.io.env);
        }
        const { items } = await ctx.clientWith(token, api).json<{ items: unknown[] }>('GET', '/v1/projects');
        const sameApi = ctx.stored.api === undefined || ctx.stored.api === api;
        await ctx.saveConfig({ api, token, ...(sameApi && ctx.stored.project ? { project: ctx.stored.project } : {}) });
        const login = tokenClaims(token).login ?? 'unknown';
        if (ctx.out.json) ctx.out.printJson({ api, login, projects: items.length, config: ctx.configFile });
        else ctx.out.print(`signed in to ${api} as ${login} (${items.length} project${items.length === 1 ? '' : 's'}); saved in ${ctx.configFile}`);
      }),
    );

  program
    .command('logout')
    .description('forget the stored token (the API address stays)')
    .action(
      run(async (ctx) => {
        const { token: _dropped, ...rest } = ctx.stored;
        await ctx.saveConfig(rest);
        ctx.out.note('signed out');
      }),
    );

  program
    .command('whoami')
    .description('who the stored token says you are, and whether the API accepts it')
    .addHelpText('after', '\nExample:\n  $ orchestrator whoami --json')
    .action(
      run(async (ctx) => {
        const client = ctx.client();
        const claims = tokenClaims(ctx.connection.token!);
        const { items } = await client.json<{ items: unknown[] }>('GET', '/v1/projects');
        const expiresAt = claims.exp ? new Date(claims.exp * 1000).toISOString() : null;
        const me = { api: client.api, login: claims.login ?? null, userId: claims.sub ?? null, expiresAt, projects: items.length, defaultProject: ctx.connection.project ?? null };
        if (ctx.out.json) return ctx.out.printJson(me);
        ctx.out.print(`${me.login ?? '(unknown login)'} at ${me.api}`);
        ctx.out.print(`  projects: ${me.projects}${me.defaultProject ? `, default ${me.defaultProject}` : ''}`);
        if (expiresAt) ctx.out.print(`  token expires ${expiresAt}`);
      }),
    );
}

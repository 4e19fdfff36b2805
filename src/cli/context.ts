import type { Command } from 'commander';
import { createApiClient, type ApiClient } from './api-client.ts';
import { configPath, readConfig, resolveConnection, writeConfig, type Connection, type StoredConfig } from './config-file.ts';
import { UsageError } from './exit-codes.ts';
import { createOutput, type CliIo, type Output } from './output.ts';

/** Everything a command needs, built from the global flags, the environment and the config file. */
export interface CliContext {
  io: CliIo;
  out: Output;
  configFile: string;
  stored: StoredConfig;
  connection: Connection;
  /** A client that sends the token; a usage error when there is none. */
  client(): ApiClient;
  /** A client without a token (login checks a token it has not stored yet). */
  clientWith(token: string, api?: string): ApiClient;
  saveConfig(next: StoredConfig): Promise<void>;
  /** The exit code the command asks for (a task that failed, was canceled or waits for consent). */
  exitCode: number;
  fetch?: typeof fetch;
}

export interface GlobalFlags {
  json?: boolean;
  color?: boolean;
  api?: string;
}

export async function buildContext(io: CliIo, command: Command, fetchImpl?: typeof fetch): Promise<CliContext> {
  const flags = command.optsWithGlobals() as GlobalFlags;
  const configFile = configPath(io.env);
  const stored = await readConfig(configFile);
  const connection = resolveConnection(stored, io.env, flags);
  const out = createOutput(io, { json: Boolean(flags.json), color: flags.color !== false });
  const ctx: CliContext = {
    io,
    out,
    configFile,
    stored,
    connection,
    exitCode: 0,
    client() {
      if (!connection.token) throw new UsageError('not signed in: run orchestrator login (or set ORCHESTRATOR_TOKEN)');
      return createApiClient({ api: connection.api, token: connection.token, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
    },
    clientWith(token, api) {
      return createApiClient({ api: api ?? connection.api, token, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
    },
    async saveConfig(next) {
      await writeConfig(configFile, next);
      ctx.stored = next;
    },
  };
  return ctx;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A project named by id or by name, or the default one (`projects use`, ORCHESTRATOR_PROJECT). */
export async function resolveProject(ctx: CliContext, given: string | undefined): Promise<string> {
  const wanted = given ?? ctx.connection.project;
  if (!wanted) throw new UsageError('which project? give --project ID|NAME, or set a default with orchestrator projects use NAME');
  if (UUID.test(wanted)) return wanted;
  const { items } = await ctx.client().json<{ items: Array<{ id: string; name: string }> }>('GET', '/v1/projects');
  const matches = items.filter((p) => p.name === wanted);
  if (matches.length === 1) return matches[0]!.id;
  if (matches.length === 0) throw new UsageError(`no project named "${wanted}" (orchestrator projects list shows yours)`);
  throw new UsageError(`${matches.length} projects are named "${wanted}": give its id instead`);
}

/** Wraps a command's action: builds the context, runs it, and leaves errors to runCli. */
export type Run = (action: (ctx: CliContext, ...args: any[]) => Promise<void>) => (...args: any[]) => Promise<void>;

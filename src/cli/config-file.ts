import { chmod, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './exit-codes.ts';

// Where the CLI keeps the API address, the token and the default project. The token is a credential: the file is
// written 0600 inside a 0700 folder, replaced atomically so a crash never leaves half a file.

export const DEFAULT_API = 'http://127.0.0.1:8080';

export interface StoredConfig {
  api?: string;
  token?: string;
  project?: string;
}
const FIELDS = ['api', 'token', 'project'] as const;

/**
 * Checked by hand rather than with zod: every command reads this file, and loading zod costs a noticeable part of a
 * second at each start of the CLI. Unknown keys are dropped.
 */
function asStoredConfig(value: unknown): StoredConfig | string {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'expected a JSON object';
  const config: StoredConfig = {};
  for (const key of FIELDS) {
    const v = (value as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v !== 'string') return `${key}: expected a string`;
    config[key] = v;
  }
  return config;
}

export function configPath(env: NodeJS.ProcessEnv): string {
  if (env.ORCHESTRATOR_CONFIG) return path.resolve(env.ORCHESTRATOR_CONFIG);
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || os.homedir(), '.config');
  return path.join(base, 'orchestrator', 'config.json');
}

export async function readConfig(file: string): Promise<StoredConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not valid JSON: fix it or remove it and run orchestrator login`);
  }
  const config = asStoredConfig(parsed);
  if (typeof config === 'string') throw new UsageError(`${file} does not look like an orchestrator config (${config})`);
  return config;
}

export async function writeConfig(file: string, config: StoredConfig): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temp = `${file}.${process.pid}.tmp`;
  await writeFile(temp, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  // The mode given to writeFile is filtered by the umask; the file must end up 0600 whatever the umask.
  await chmod(temp, 0o600);
  await rename(temp, file);
}

export async function removeConfigFile(file: string): Promise<void> {
  await rm(file, { force: true });
}

/** What the client uses: a flag beats the environment, which beats the config file. */
export interface Connection {
  api: string;
  token?: string;
  project?: string;
}

export function resolveConnection(stored: StoredConfig, env: NodeJS.ProcessEnv, flags: { api?: string }): Connection {
  const api = (flags.api || env.ORCHESTRATOR_API || stored.api || DEFAULT_API).replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+/.test(api)) throw new UsageError(`the API address must be an http(s) URL, got "${api}"`);
  const token = env.ORCHESTRATOR_TOKEN || stored.token;
  const project = env.ORCHESTRATOR_PROJECT || stored.project;
  return { api, ...(token ? { token } : {}), ...(project ? { project } : {}) };
}

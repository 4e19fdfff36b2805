import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { startWireServer } from './pglite-wire-server.ts';

/**
 * Postgres compiled to WebAssembly (PGlite), kept in a folder and served on a loopback port, for `npm start` on a
 * machine that has only Node. The service talks to it through `pg` like to any Postgres. PGlite loads extensions
 * only when asked: pg_trgm (the knowledge graph's fuzzy search) is loaded here, so the migrations run unchanged.
 */
export interface EmbeddedPostgres {
  /** A connection URL for `pg`, with this start's password. */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * PGlite has one database, `postgres`. Its port is on loopback, which every user of the machine can reach, so the wire
 * server asks for a password made afresh at each start; the URL holding it is kept in memory and in the 0600
 * `running.json` of the data folder (for `token` and `admin` beside a running `npm start`), nowhere else.
 */
export function embeddedPostgresUrl(host: string, port: number, password: string): string {
  return `postgres://postgres:${encodeURIComponent(password)}@${host}:${port}/postgres`;
}

export function newEmbeddedPostgresPassword(): string {
  return randomBytes(24).toString('base64url');
}

export async function startEmbeddedPostgres(opts: { dataDir: string; host?: string; port?: number; password?: string }): Promise<EmbeddedPostgres> {
  const password = opts.password ?? newEmbeddedPostgresPassword();
  mkdirSync(opts.dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir: opts.dataDir, extensions: { pg_trgm } });
  let wire;
  try {
    wire = await startWireServer(db, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0, password });
  } catch (err) {
    await db.close();
    throw err;
  }
  const server = wire;
  return {
    url: embeddedPostgresUrl(server.host, server.port, password),
    dataDir: opts.dataDir,
    async stop() {
      await server.stop();
      // Closing flushes PGlite's files: a process that exits without it leaves Postgres to recover at next start.
      await db.close();
    },
  };
}

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
  /** A connection URL for `pg` (no password: the port listens on loopback only). */
  url: string;
  dataDir: string;
  stop(): Promise<void>;
}

/** PGlite has one database, `postgres`, and no passwords: the port listens on loopback only. */
export function embeddedPostgresUrl(host: string, port: number): string {
  return `postgres://postgres@${host}:${port}/postgres`;
}

export async function startEmbeddedPostgres(opts: { dataDir: string; host?: string; port?: number }): Promise<EmbeddedPostgres> {
  mkdirSync(opts.dataDir, { recursive: true });
  const db = await PGlite.create({ dataDir: opts.dataDir, extensions: { pg_trgm } });
  let wire;
  try {
    wire = await startWireServer(db, { host: opts.host ?? '127.0.0.1', port: opts.port ?? 0 });
  } catch (err) {
    await db.close();
    throw err;
  }
  const server = wire;
  return {
    url: embeddedPostgresUrl(server.host, server.port),
    dataDir: opts.dataDir,
    async stop() {
      await server.stop();
      // Closing flushes PGlite's files: a process that exits without it leaves Postgres to recover at next start.
      await db.close();
    },
  };
}

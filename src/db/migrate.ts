import { readdir } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Migrator, type Migration, type MigrationProvider, type MigrationResult } from 'kysely';
import type { Db } from './create-db.ts';

/** Loads every `migrations/NNNN_name.ts` file; kysely's Migrator orders them and takes a lock. */
class FolderMigrationProvider implements MigrationProvider {
  constructor(private readonly folder: string) {}

  async getMigrations(): Promise<Record<string, Migration>> {
    const files = (await readdir(this.folder)).filter((f) => /^\d{4}_[a-z0-9_]+\.ts$/.test(f)).sort();
    const migrations: Record<string, Migration> = {};
    for (const file of files) {
      migrations[file.replace(/\.ts$/, '')] = (await import(pathToFileURL(path.join(this.folder, file)).href)) as Migration;
    }
    return migrations;
  }
}

export async function migrateToLatest(db: Db, migrationsFolder: string): Promise<MigrationResult[]> {
  const migrator = new Migrator({ db, provider: new FolderMigrationProvider(migrationsFolder) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return results ?? [];
}

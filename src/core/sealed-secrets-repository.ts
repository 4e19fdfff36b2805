import type { Db } from '../db/create-db.ts';

// Repository: the SQL that reads and rewrites sealed columns as a whole (key rotation).

export type SealedCell =
  | { column: 'space_bindings.token_sealed'; projectId: string; serverId: string; sealed: string }
  | { column: 'users.hf_token_sealed'; userId: string; sealed: string }
  | { column: 'users.github_token_sealed'; userId: string; sealed: string };

/** Every sealed value, locked until the transaction ends so a concurrent write cannot be overwritten. */
export async function lockSealedCells(trx: Db): Promise<SealedCell[]> {
  const bindings = await trx
    .selectFrom('space_bindings')
    .select(['project_id', 'server_id', 'token_sealed'])
    .where('token_sealed', 'is not', null)
    .forUpdate()
    .execute();
  const users = await trx
    .selectFrom('users')
    .select(['id', 'hf_token_sealed', 'github_token_sealed'])
    .where((eb) => eb.or([eb('hf_token_sealed', 'is not', null), eb('github_token_sealed', 'is not', null)]))
    .forUpdate()
    .execute();
  return [
    ...bindings.map((r) => ({ column: 'space_bindings.token_sealed' as const, projectId: r.project_id, serverId: r.server_id, sealed: r.token_sealed! })),
    ...users.filter((r) => r.hf_token_sealed !== null).map((r) => ({ column: 'users.hf_token_sealed' as const, userId: r.id, sealed: r.hf_token_sealed! })),
    ...users.filter((r) => r.github_token_sealed !== null).map((r) => ({ column: 'users.github_token_sealed' as const, userId: r.id, sealed: r.github_token_sealed! })),
  ];
}

export async function writeSealedCell(trx: Db, cell: SealedCell, sealed: string): Promise<void> {
  if (cell.column === 'space_bindings.token_sealed') {
    await trx
      .updateTable('space_bindings')
      .set({ token_sealed: sealed })
      .where('project_id', '=', cell.projectId)
      .where('server_id', '=', cell.serverId)
      .execute();
  } else if (cell.column === 'users.hf_token_sealed') {
    await trx.updateTable('users').set({ hf_token_sealed: sealed }).where('id', '=', cell.userId).execute();
  } else {
    await trx.updateTable('users').set({ github_token_sealed: sealed }).where('id', '=', cell.userId).execute();
  }
}

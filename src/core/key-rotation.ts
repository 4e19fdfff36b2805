import type { Db } from '../db/create-db.ts';
import { spaceBindingTokenAad, userGithubTokenAad, userHfTokenAad, type SecretBox } from './sealed-secrets.ts';
import { lockSealedCells, writeSealedCell, type SealedCell } from './sealed-secrets-repository.ts';

export interface RotationReport {
  /** Values opened with an older key or format and sealed again under the current key. */
  resealed: number;
  /** Values already sealed under the current key: left as they are, which makes a second run a no-op. */
  alreadyCurrent: number;
  /** Values that open with no known key for their row (a missing previous key, or a value moved between rows). */
  unreadable: string[];
}

function aadOf(cell: SealedCell): string {
  if (cell.column === 'space_bindings.token_sealed') return spaceBindingTokenAad(cell.projectId, cell.serverId);
  return cell.column === 'users.hf_token_sealed' ? userHfTokenAad(cell.userId) : userGithubTokenAad(cell.userId);
}

/** Names a cell for an operator; never its value. */
function labelOf(cell: SealedCell): string {
  if (cell.column === 'space_bindings.token_sealed') return `space binding ${cell.projectId}/${cell.serverId}`;
  return `user ${cell.userId} (${cell.column === 'users.hf_token_sealed' ? 'Hugging Face' : 'GitHub'} token)`;
}

/**
 * Re-seals every sealed value under the box's current key, in one transaction. Values that cannot be opened are
 * reported and left as they are: rerunning with the missing previous key picks them up.
 */
export async function rotateSealedSecrets(db: Db, box: SecretBox): Promise<RotationReport> {
  return db.transaction().execute(async (trx) => {
    const report: RotationReport = { resealed: 0, alreadyCurrent: 0, unreadable: [] };
    for (const cell of await lockSealedCells(trx)) {
      const aad = aadOf(cell);
      let plain: string;
      try {
        // Current values are opened too, so a value moved between rows is reported whatever its key.
        plain = box.open(cell.sealed, aad);
      } catch {
        report.unreadable.push(labelOf(cell));
        continue;
      }
      if (box.isCurrent(cell.sealed)) {
        report.alreadyCurrent++;
        continue;
      }
      await writeSealedCell(trx, cell, box.seal(plain, aad));
      report.resealed++;
    }
    return report;
  });
}

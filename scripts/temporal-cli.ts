// Finds the pinned Temporal CLI, or downloads or builds it into .tools/ (a cold Go build takes minutes), and prints its path.
// CI runs this as its own step before the tests, so no test hook has to wait for a build; CI never downloads.
import path from 'node:path';
import { PROJECT_ROOT } from '../src/compose.ts';
import { temporalCliDownload } from '../src/config.ts';
import { findOrBuildTemporalCli } from '../src/temporal/cli-binary.ts';

const cli = await findOrBuildTemporalCli({ env: process.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log: (m) => process.stderr.write(`${m}\n`), download: temporalCliDownload(process.env, { byDefault: true }) });
process.stdout.write(`${cli}\n`);

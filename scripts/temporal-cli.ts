// Finds the pinned Temporal CLI or builds it into .tools/ (a cold Go build takes minutes) and prints its path.
// CI runs this as its own step before the tests, so no test hook has to wait for a build.
import path from 'node:path';
import { PROJECT_ROOT } from '../src/compose.ts';
import { findOrBuildTemporalCli } from '../src/temporal/cli-binary.ts';

const cli = await findOrBuildTemporalCli({ env: process.env, toolsDir: path.join(PROJECT_ROOT, '.tools'), log: (m) => process.stderr.write(`${m}\n`) });
process.stdout.write(`${cli}\n`);

// Runs before node_modules exists (npm start / npm test / npm run bench), so: plain Node, no imports
// beyond node:*. Silent and fast when the install is current.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(dirname(fileURLToPath(import.meta.url)));

function mtimeMs(path) {
  try {
    return statSync(path).mtimeMs;
  } catch {
    return undefined;
  }
}

function installReason() {
  const lock = mtimeMs(join(root, 'package-lock.json'));
  if (lock === undefined) {
    console.error('ensure-install: package-lock.json is missing; run `npm install` to create it');
    process.exit(1);
  }
  if (mtimeMs(join(root, 'node_modules')) === undefined) return 'node_modules is missing';
  // npm writes node_modules/.package-lock.json at the end of every install.
  const installed = mtimeMs(join(root, 'node_modules', '.package-lock.json'));
  if (installed === undefined) return 'node_modules has no record of a finished install';
  if (lock > installed) return 'package-lock.json changed since the last install';
  return undefined;
}

const reason = installReason();
if (reason !== undefined) {
  console.error(`ensure-install: ${reason}; running npm ci`);
  // Under `npm run`, npm_execpath is the npm that started us: reuse it rather than whatever is on PATH.
  const npmCli = process.env.npm_execpath;
  const [command, args] =
    npmCli && /npm-cli\.c?js$/.test(npmCli)
      ? [process.execPath, [npmCli, 'ci']]
      : [process.platform === 'win32' ? 'npm.cmd' : 'npm', ['ci']];
  const result = spawnSync(command, args, { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.error) {
    console.error(`ensure-install: could not run npm ci: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    console.error(
      `ensure-install: npm ci failed (exit ${result.status ?? result.signal}); fix the error above and run \`npm ci\``,
    );
    process.exit(1);
  }
}

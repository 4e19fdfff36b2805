import assert from 'node:assert/strict';
import { ConfigError, temporalCliDownload } from '../../src/config.ts';
import { checksumFor, releaseArchiveName } from '../../src/temporal/cli-download.ts';

const GITHUB = 'https://github.com/temporalio/cli/releases/download';

describe('temporalCliDownload', function () {
  it('follows the caller default when TEMPORAL_CLI_DOWNLOAD is unset', function () {
    assert.deepEqual(temporalCliDownload({}, { byDefault: true }), { baseUrl: GITHUB });
    assert.equal(temporalCliDownload({}, { byDefault: false }), undefined);
    assert.equal(temporalCliDownload({ TEMPORAL_CLI_DOWNLOAD: '' }, { byDefault: false }), undefined);
  });

  it('never downloads by default in CI, unless asked to', function () {
    assert.equal(temporalCliDownload({ CI: 'true' }, { byDefault: true }), undefined);
    assert.equal(temporalCliDownload({ CI: '1' }, { byDefault: true }), undefined);
    assert.deepEqual(temporalCliDownload({ CI: 'false' }, { byDefault: true }), { baseUrl: GITHUB });
    assert.deepEqual(temporalCliDownload({ CI: 'true', TEMPORAL_CLI_DOWNLOAD: 'on' }, { byDefault: false }), { baseUrl: GITHUB });
  });

  it('lets the variables override the default and the base URL', function () {
    assert.equal(temporalCliDownload({ TEMPORAL_CLI_DOWNLOAD: 'off' }, { byDefault: true }), undefined);
    assert.deepEqual(
      temporalCliDownload({ TEMPORAL_CLI_DOWNLOAD: 'on', TEMPORAL_CLI_DOWNLOAD_URL: 'http://127.0.0.1:9/mirror' }, { byDefault: false }),
      { baseUrl: 'http://127.0.0.1:9/mirror' },
    );
  });

  it('names each bad variable', function () {
    assert.throws(
      () => temporalCliDownload({ TEMPORAL_CLI_DOWNLOAD: 'yes', TEMPORAL_CLI_DOWNLOAD_URL: 'ftp://mirror/x' }, { byDefault: true }),
      (err: unknown) =>
        err instanceof ConfigError &&
        err.problems.some((p) => p.startsWith('TEMPORAL_CLI_DOWNLOAD: must be on or off')) &&
        err.problems.some((p) => p.startsWith('TEMPORAL_CLI_DOWNLOAD_URL: must be an http(s) URL')),
    );
  });
});

describe('release archives', function () {
  it('names the goreleaser asset for each published OS and CPU, and none for the rest', function () {
    assert.equal(releaseArchiveName('linux', 'x64'), 'temporal_cli_1.5.1_linux_amd64.tar.gz');
    assert.equal(releaseArchiveName('linux', 'arm64'), 'temporal_cli_1.5.1_linux_arm64.tar.gz');
    assert.equal(releaseArchiveName('darwin', 'arm64'), 'temporal_cli_1.5.1_darwin_arm64.tar.gz');
    assert.equal(releaseArchiveName('win32', 'x64'), undefined);
    assert.equal(releaseArchiveName('linux', 'ia32'), undefined);
  });

  it('reads the digest listed for a file, ignoring other files and malformed lines', function () {
    const a = 'a'.repeat(64);
    const b = 'B'.repeat(64);
    const list = `${a}  temporal_cli_1.5.1_darwin_amd64.tar.gz\r\nnot a line\n${b} *temporal_cli_1.5.1_linux_amd64.tar.gz\n`;
    assert.equal(checksumFor(list, 'temporal_cli_1.5.1_linux_amd64.tar.gz'), 'b'.repeat(64));
    assert.equal(checksumFor(list, 'temporal_cli_1.5.1_darwin_amd64.tar.gz'), a);
    assert.equal(checksumFor(list, 'temporal_cli_1.5.1_linux_arm64.tar.gz'), undefined);
    assert.equal(checksumFor(`${'c'.repeat(63)}  temporal_cli_1.5.1_linux_amd64.tar.gz`, 'temporal_cli_1.5.1_linux_amd64.tar.gz'), undefined);
  });
});

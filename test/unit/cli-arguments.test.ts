import assert from 'node:assert/strict';
import { runCli } from '../../src/cli/program.ts';
import { EXIT, exitCodeForStatus, UsageError } from '../../src/cli/exit-codes.ts';
import { freePort } from '../../src/lib/free-port.ts';
import { formatTable } from '../../src/cli/output.ts';
import { progressLine } from '../../src/cli/progress-view.ts';
import { buildToolArguments, parseArgPair } from '../../src/cli/task-arguments.ts';
import { resultText } from '../../src/cli/task-report.ts';

function captureIo(env: NodeJS.ProcessEnv = {}) {
  const out: string[] = [];
  const err: string[] = [];
  return {
    io: { env: { ORCHESTRATOR_CONFIG: '/nonexistent/orchestrator-test/config.json', ...env }, stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, stdin: process.stdin },
    stdout: () => out.join(''),
    stderr: () => err.join(''),
  };
}

/** A fetch that fails the test if any command reaches the network: usage errors must be caught before a request. */
const noNetwork = (async (input: unknown) => {
  throw new Error(`unexpected request to ${String(input)}`);
}) as typeof fetch;

describe('cli arguments', () => {
  it('reads key=value as a string and key:=json as JSON', () => {
    assert.deepEqual(parseArgPair('text=123'), ['text', '123']);
    assert.deepEqual(parseArgPair('ms:=123'), ['ms', 123]);
    assert.deepEqual(parseArgPair('opts:={"a":[1,true]}'), ['opts', { a: [1, true] }]);
    assert.deepEqual(parseArgPair('query=a=b'), ['query', 'a=b']);
    assert.deepEqual(parseArgPair('empty='), ['empty', '']);
  });

  it('refuses pairs it cannot read, as usage errors', () => {
    for (const bad of ['novalue', '=x', 'n:=not json', 'a:b=c']) {
      assert.throws(() => parseArgPair(bad), (e: unknown) => e instanceof UsageError && e.exitCode === EXIT.usage, bad);
    }
  });

  it('layers --arg over --args from JSON text, a file and stdin', async () => {
    assert.deepEqual(await buildToolArguments({ args: '{"text":"a","n":1}', arg: ['text=b'] }), { text: 'b', n: 1 });
    const read = async (source: { file: string } | { stdin: true }) => ('file' in source ? (source.file === 'in.json' ? '{"from":"file"}' : '') : '{"from":"stdin"}');
    assert.deepEqual(await buildToolArguments({ args: '@in.json' }, read), { from: 'file' });
    assert.deepEqual(await buildToolArguments({ args: '-', arg: ['x:=2'] }, read), { from: 'stdin', x: 2 });
    assert.deepEqual(await buildToolArguments({}), {});
  });

  it('wants a JSON object in --args and names the file it could not read', async () => {
    await assert.rejects(buildToolArguments({ args: '[1]' }), /must be a JSON object/);
    await assert.rejects(buildToolArguments({ args: '{oops' }), /not valid JSON/);
    await assert.rejects(buildToolArguments({ args: '@/nonexistent/args.json' }), (e: unknown) => e instanceof UsageError && /cannot read \/nonexistent\/args\.json \(ENOENT\)/.test(e.message));
  });

  it('maps task statuses to exit codes a script can use', () => {
    assert.deepEqual(
      ['succeeded', 'failed', 'awaiting_consent', 'canceled'].map(exitCodeForStatus),
      [EXIT.succeeded, EXIT.failed, EXIT.awaitingConsent, EXIT.canceled],
    );
    assert.deepEqual([EXIT.succeeded, EXIT.failed, EXIT.usage, EXIT.awaitingConsent, EXIT.canceled], [0, 1, 2, 3, 4]);
  });
});

describe('cli commands without a server', () => {
  it('answers --help with an example on stdout and exit 0', async () => {
    for (const argv of [['--help'], ['run', '--help'], ['tasks', 'consent', '--help'], ['mcps', 'add', '--help']]) {
      const c = captureIo();
      assert.equal(await runCli(argv, c.io, { fetch: noNetwork }), 0, argv.join(' '));
      assert.match(c.stdout(), /Example/, argv.join(' '));
    }
  });

  it('exits 2 on usage errors, before any request', async () => {
    const signedIn = { ORCHESTRATOR_TOKEN: 'x.e30.y', ORCHESTRATOR_PROJECT: '00000000-0000-4000-8000-000000000000' };
    const cases: Array<[string[], RegExp]> = [
      [[], /Usage: orchestrator/],
      [['bogus'], /unknown command 'bogus'/],
      [['run'], /missing required argument 'tool'/],
      [['run', 'echo', '--nope'], /unknown option '--nope'/],
      [['run', 'echo', '--arg', 'novalue'], /expected key=value/],
      [['tasks', 'submit', '--arg', 'a=b'], /required option '--tool <tool>'/],
      [['tasks', 'consent', 'some-id'], /exactly one of --grant and --deny/],
      [['tasks', 'consent', 'some-id', '--grant', '--deny'], /exactly one of --grant and --deny/],
      [['spaces', 'bind', 'echo'], /give --space owner\/name or --url URL/],
      [['--api', 'ftp://x', 'whoami'], /must be an http\(s\) URL/],
    ];
    for (const [argv, message] of cases) {
      const c = captureIo(signedIn);
      assert.equal(await runCli(argv, c.io, { fetch: noNetwork }), EXIT.usage, argv.join(' '));
      assert.match(c.stderr(), message, argv.join(' '));
    }
  });

  it('says how to sign in when there is no token (exit 2)', async () => {
    const c = captureIo();
    assert.equal(await runCli(['projects', 'list'], c.io, { fetch: noNetwork }), EXIT.usage);
    assert.match(c.stderr(), /not signed in: run orchestrator login/);
  });

  it('asks which project when none is given or set', async () => {
    const c = captureIo({ ORCHESTRATOR_TOKEN: 'x.e30.y' });
    assert.equal(await runCli(['run', 'echo', '--arg', 'text=hi'], c.io, { fetch: noNetwork }), EXIT.usage);
    assert.match(c.stderr(), /which project\?/);
  });

  it('reports an unreachable API in one line (exit 1)', async () => {
    const port = await freePort();
    const c = captureIo({ ORCHESTRATOR_TOKEN: 'x.e30.y', ORCHESTRATOR_API: `http://127.0.0.1:${port}` });
    assert.equal(await runCli(['projects', 'list'], c.io), EXIT.failed);
    assert.equal(c.stderr(), `error: cannot reach the API at http://127.0.0.1:${port}: ECONNREFUSED (is it running? npm start)\n`);
  });
});

describe('cli output', () => {
  it('prints the text parts of a tool result, and nothing for other JSON', () => {
    assert.equal(resultText('{"content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}', 'application/json'), 'a\nb');
    assert.equal(resultText('{"content":[{"type":"image","data":"…"}]}', 'application/json'), null);
    assert.equal(resultText('{"other":1}', 'application/json'), null);
    assert.equal(resultText('plain', 'text/plain'), null);
  });

  it('aligns table columns and shows missing values as -', () => {
    assert.equal(formatTable([{ id: 'a', name: 'long name' }, { id: 'bbb', name: null }], ['id', 'name']), 'ID   NAME\na    long name\nbbb  -\n');
    assert.equal(formatTable([], ['id']), '(none)\n');
  });

  it('describes progress with or without a total', () => {
    assert.equal(progressLine({ progress: 2, total: 4, message: 'step 2' }), 'progress 2/4 step 2');
    assert.equal(progressLine({ progress: 7, phase: 'waking' }), 'progress 7 waking');
  });
});

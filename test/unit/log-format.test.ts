import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { ConfigError, loadConfig, loadLogSettings } from '../../src/config.ts';
import { createLogger, resolveLogFormat } from '../../src/lib/logger.ts';

function memoryLogger(format: 'json' | 'pretty') {
  const lines: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk));
      done();
    },
  });
  const log = createLogger({ level: 'info', name: 'test', format, destination });
  return { log, text: () => lines.join('') };
}

describe('LOG_FORMAT', function () {
  it('auto is pretty at a terminal and JSON anywhere else; json and pretty are what they say', function () {
    assert.equal(resolveLogFormat('auto', true), 'pretty');
    assert.equal(resolveLogFormat('auto', false), 'json');
    assert.equal(resolveLogFormat('json', true), 'json');
    assert.equal(resolveLogFormat('pretty', false), 'pretty');
  });

  it('defaults to auto, and a bad value stops the start naming the variable', function () {
    assert.deepEqual(loadLogSettings({}), { level: 'info', format: 'auto' });
    assert.deepEqual(loadLogSettings({ LOG_FORMAT: 'pretty', LOG_LEVEL: 'debug' }), { level: 'debug', format: 'pretty' });
    assert.deepEqual(loadLogSettings({ LOG_FORMAT: '' }), { level: 'info', format: 'auto' });
    assert.throws(() => loadLogSettings({ LOG_FORMAT: 'yaml' }), (err: unknown) => err instanceof ConfigError && /LOG_FORMAT/.test(err.message));
    assert.throws(() => loadConfig({ JWT_SECRET: 'x'.repeat(32), ENCRYPTION_KEY: 'a'.repeat(64), DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/x', LOG_FORMAT: 'xml' }), /LOG_FORMAT/);
  });

  it('pretty writes one readable line an event, with the level, message and fields', function () {
    const { log, text } = memoryLogger('pretty');
    log.info({ port: 8080 }, 'API listening');
    log.debug('below the level');
    const out = text();
    assert.match(out, /\d\d:\d\d:\d\d\.\d{3}\] INFO \(test\): API listening/);
    assert.match(out, /port: 8080/);
    assert.doesNotMatch(out, /below the level/);
    assert.throws(() => JSON.parse(out.split('\n')[0]!));
    assert.doesNotMatch(out, /\x1b\[/, 'no colour codes when not writing to a terminal');
  });

  it('pretty still redacts secrets', function () {
    const { log, text } = memoryLogger('pretty');
    log.info({ token: 'SECRET-A', req: { headers: { authorization: 'Bearer SECRET-B' } } }, 'request');
    assert.doesNotMatch(text(), /SECRET-A|SECRET-B/);
    assert.match(text(), /\[redacted\]/);
  });

  it('json writes JSON lines', function () {
    const { log, text } = memoryLogger('json');
    log.info({ port: 8080 }, 'API listening');
    assert.equal(JSON.parse(text()).msg, 'API listening');
  });
});

import assert from 'node:assert/strict';
import { createLogger } from '../../src/lib/logger.ts';

function memoryLogger(level = 'info') {
  const lines: string[] = [];
  const log = createLogger({ level, name: 'test', destination: { write: (line: string) => void lines.push(line) } });
  return { log, lines };
}

describe('createLogger', () => {
  it('writes JSON lines with the level, name and message', () => {
    const { log, lines } = memoryLogger();
    log.info({ taskId: 't1' }, 'task started');
    log.debug('below the level');
    assert.equal(lines.length, 1);
    const entry = JSON.parse(lines[0]!);
    assert.equal(entry.level, 30);
    assert.equal(entry.name, 'test');
    assert.equal(entry.msg, 'task started');
    assert.equal(entry.taskId, 't1');
  });

  it('redacts tokens and secrets at several depths', () => {
    const { log, lines } = memoryLogger();
    log.info(
      {
        token: 'SECRET-A',
        space: { hfToken: 'SECRET-B', url: 'https://example.test' },
        config: { db: { password: 'SECRET-C' }, jwt: { nested: { secret: 'SECRET-D' } } },
        mcp: { apiKey: 'SECRET-E' },
      },
      'registered',
    );
    const output = lines.join('');
    for (const secret of ['SECRET-A', 'SECRET-B', 'SECRET-C', 'SECRET-D', 'SECRET-E']) {
      assert.ok(!output.includes(secret), `${secret} leaked: ${output}`);
    }
    const entry = JSON.parse(lines[0]!);
    assert.equal(entry.space.hfToken, '[redacted]');
    assert.equal(entry.space.url, 'https://example.test');
  });

  it('redacts Authorization and Cookie headers, also from child loggers', () => {
    const { log, lines } = memoryLogger();
    const child = log.child({ component: 'http' });
    child.info({ req: { method: 'GET', headers: { authorization: 'Bearer eyJSECRETJWT', cookie: 'sid=SECRETCOOKIE', accept: '*/*' } } }, 'request');
    child.warn({ err: { config: { headers: { Authorization: 'Bearer SECRETCAPS' } } } }, 'upstream failed');
    log.child({ token: 'SECRETCHILD' }).info('bound');
    const output = lines.join('');
    for (const secret of ['eyJSECRETJWT', 'SECRETCOOKIE', 'SECRETCAPS', 'SECRETCHILD']) {
      assert.ok(!output.includes(secret), `${secret} leaked: ${output}`);
    }
    assert.equal(JSON.parse(lines[0]!).req.headers.accept, '*/*');
  });

  it('redacts secrets carried on a logged error', () => {
    const { log, lines } = memoryLogger();
    const err = Object.assign(new Error('dispatch failed'), { token: 'SECRET-ON-ERROR' });
    log.error({ err }, 'failed');
    const output = lines.join('');
    assert.ok(!output.includes('SECRET-ON-ERROR'), output);
    assert.match(output, /dispatch failed/);
  });
});

import assert from 'node:assert/strict';
import { createArgumentValidator } from '../../src/core/argument-validation.ts';

const echo = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  type: 'object',
  properties: { text: { type: 'string' }, when: { type: 'string', format: 'date-time' } },
  required: ['text'],
  additionalProperties: false,
};

describe('argument validation against a tool\'s input schema', function () {
  it('accepts fitting arguments and names each problem by path', function () {
    const v = createArgumentValidator();
    assert.deepEqual(v.check('echo', [echo], { text: 'hi' }), []);
    assert.deepEqual(v.check('echo', [echo], { text: 5 }), [{ path: 'arguments.text', message: 'must be string' }]);
    assert.deepEqual(v.check('echo', [echo], { text: 'x', extra: 1 }), [{ path: 'arguments', message: 'unknown property "extra"' }]);
    assert.equal(v.check('echo', [echo], { text: 'x', when: 'yesterday' })[0]!.path, 'arguments.when');
    assert.match(v.check('echo', [echo], {})[0]!.message, /text/);
  });

  it('passes when any offering\'s schema accepts the arguments', function () {
    const v = createArgumentValidator();
    const numeric = { type: 'object', properties: { text: { type: 'number' } } };
    assert.deepEqual(v.check('echo', [echo, numeric], { text: 5 }), []);
  });

  it('lets arguments through when a schema cannot be used, and says so', function () {
    const unusable: string[] = [];
    const v = createArgumentValidator({ onUnusableSchema: (tool) => unusable.push(tool) });
    assert.deepEqual(v.check('odd', [{ type: 'object', properties: { a: { $ref: '#/nowhere' } } }], { a: 1 }), []);
    assert.deepEqual(unusable, ['odd']);
  });

  describe('patterns from a registered server', function () {
    const timed = <T>(fn: () => T): { value: T; ms: number } => {
      const started = performance.now();
      const value = fn();
      return { value, ms: performance.now() - started };
    };

    it('matches a catastrophic-backtracking pattern in linear time and reports the mismatch', function () {
      const v = createArgumentValidator();
      const schema = { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } };
      v.check('evil', [schema], { s: 'a' }); // compile outside the measurement
      // 27 characters take a second or more to backtrack through: a regression fails here instead of hanging below.
      const short = timed(() => v.check('evil', [schema], { s: 'a'.repeat(27) + 'b' }));
      assert.ok(short.ms < 100, `took ${short.ms.toFixed(1)} ms`);
      const { value, ms } = timed(() => v.check('evil', [schema], { s: 'a'.repeat(40) + 'b' }));
      assert.ok(ms < 100, `took ${ms.toFixed(1)} ms`);
      assert.deepEqual(value, [{ path: 'arguments.s', message: 'must match pattern "^(a+)+$"' }]);
      assert.deepEqual(v.check('evil', [schema], { s: 'a'.repeat(40) }), []);
    });

    it('matches patternProperties in linear time too', function () {
      const v = createArgumentValidator();
      const schema = { type: 'object', patternProperties: { '^(a+)+$': { type: 'number' } } };
      const key = 'a'.repeat(27) + 'b';
      const { value, ms } = timed(() => v.check('evil', [schema], { [key]: 'x', aaaaa: 'y' }));
      assert.ok(ms < 100, `took ${ms.toFixed(1)} ms`);
      assert.deepEqual(value, [{ path: 'arguments.aaaaa', message: 'must be number' }]);
    });

    it('keeps ordinary and unicode patterns working', function () {
      const v = createArgumentValidator();
      const schema = {
        type: 'object',
        properties: { code: { type: 'string', pattern: '^[A-Z]{3}-\\d{2}$' }, word: { type: 'string', pattern: '^\\p{L}+$' }, one: { type: 'string', pattern: '^.$' } },
      };
      assert.deepEqual(v.check('t', [schema], { code: 'ABC-12', word: 'grüße', one: '😀' }), []);
      assert.deepEqual(
        v.check('t', [schema], { code: 'abc-12', word: 'grüße1', one: 'ab' }).map((p) => p.path),
        ['arguments.code', 'arguments.word', 'arguments.one'],
      );
    });

    it('treats a pattern RE2 cannot run as an unusable schema, without throwing', function () {
      const unusable: string[] = [];
      const v = createArgumentValidator({ onUnusableSchema: (tool) => unusable.push(tool) });
      const backref = { type: 'object', properties: { s: { type: 'string', pattern: '^(a)\\1$' } } };
      const lookahead = { type: 'object', patternProperties: { '^(?=x)': { type: 'number' } } };
      assert.deepEqual(v.check('backref', [backref], { s: 'zz' }), []);
      assert.deepEqual(v.check('lookahead', [lookahead], { x: 'no' }), []);
      assert.deepEqual(v.check('backref', [backref], { s: 'zz' }), [], 'a second call uses the remembered verdict');
      assert.deepEqual(unusable, ['backref', 'lookahead']);
    });

    it('checks format "url" in linear time', function () {
      const v = createArgumentValidator();
      const schema = { type: 'object', properties: { u: { type: 'string', format: 'url' } } };
      assert.deepEqual(v.check('t', [schema], { u: 'https://example.com/a?b=c' }), []);
      assert.equal(v.check('t', [schema], { u: 'not a url' })[0]?.path, 'arguments.u');
      const { value, ms } = timed(() => v.check('t', [schema], { u: 'http://' + ':'.repeat(40_000) + ' ' }));
      assert.ok(ms < 100, `took ${ms.toFixed(1)} ms`);
      assert.equal(value[0]?.path, 'arguments.u');
    });

    it('only compiles a "regex" format argument, never runs it', function () {
      const v = createArgumentValidator();
      const schema = { type: 'object', properties: { re: { type: 'string', format: 'regex' } } };
      const { value, ms } = timed(() => v.check('t', [schema], { re: '^(a+)+$' }));
      assert.deepEqual(value, []);
      assert.ok(ms < 100, `took ${ms.toFixed(1)} ms`);
      assert.equal(v.check('t', [schema], { re: '(' })[0]?.path, 'arguments.re');
    });
  });
});

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
});

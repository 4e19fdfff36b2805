import assert from 'node:assert/strict';
import { inspectJson } from '../../src/lib/json-shape.ts';

describe('inspectJson', function () {
  it('passes ordinary values, including astral characters', function () {
    assert.equal(inspectJson({ a: [1, 'x', { b: null, c: '😀' }], d: true }, { maxDepth: 64 }), undefined);
  });

  it('finds NUL in a value or a key, with a printable path', function () {
    assert.deepEqual(inspectJson({ a: [{ b: 'x\u0000' }] }, { maxDepth: 64 }), { kind: 'nul', path: 'a.0.b' });
    assert.deepEqual(inspectJson({ a: { 'k\u0000': 1 } }, { maxDepth: 64 }), { kind: 'nul', path: 'a.k\\u0000' });
    assert.deepEqual(inspectJson('\u0000', { maxDepth: 64 }), { kind: 'nul', path: '(root)' });
  });

  it('finds lone surrogates, which JSON allows and Postgres refuses', function () {
    assert.deepEqual(inspectJson(JSON.parse('{"a":"\\ud800"}'), { maxDepth: 64 }), { kind: 'lone_surrogate', path: 'a' });
    assert.deepEqual(inspectJson(JSON.parse('{"\\udc00":1}'), { maxDepth: 64 }), { kind: 'lone_surrogate', path: '\uFFFD' });
  });

  it('stops at the depth limit without recursing, even 100,000 deep', function () {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    assert.deepEqual(inspectJson(deep, { maxDepth: 64 }), { kind: 'too_deep', maxDepth: 64 });
    let ok: unknown = 1;
    for (let i = 0; i < 64; i++) ok = { a: ok };
    assert.equal(inspectJson(ok, { maxDepth: 64 }), undefined);
    assert.deepEqual(inspectJson({ a: ok }, { maxDepth: 64 }), { kind: 'too_deep', maxDepth: 64 });
  });
});

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { SealedValueError, createSecretBox, generateKey } from '../../src/lib/secret-box.ts';

describe('secret box', () => {
  const key = generateKey();

  it('generates 32-byte keys as 64 hex characters, different each time', () => {
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.notEqual(generateKey(), key);
  });

  it('round-trips text, including empty and non-ASCII strings', () => {
    const box = createSecretBox(key);
    for (const plain of ['hf_abcdefghijklmnop', '', 'clé 🔑 \n done', 'x'.repeat(100_000)]) {
      assert.equal(box.open(box.seal(plain)), plain);
    }
  });

  it('seals to a versioned base64url format that hides the plaintext and never repeats', () => {
    const box = createSecretBox(key);
    const a = box.seal('hf_secret_token');
    const b = box.seal('hf_secret_token');
    assert.match(a, /^v1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    assert.notEqual(a, b);
    assert.doesNotMatch(a, /hf_secret_token/);
    assert.doesNotMatch(Buffer.from(a.split('.')[3]!, 'base64url').toString('latin1'), /secret/);
  });

  it('accepts the same key as base64', () => {
    const base64 = Buffer.from(key, 'hex').toString('base64');
    assert.equal(createSecretBox(base64).open(createSecretBox(key).seal('same key')), 'same key');
    const base64url = Buffer.from(key, 'hex').toString('base64url');
    assert.equal(createSecretBox(base64url).open(createSecretBox(key).seal('same key')), 'same key');
  });

  it('rejects keys that are not 32 bytes', () => {
    for (const bad of ['', 'abc', 'f'.repeat(63), randomBytes(16).toString('hex'), randomBytes(31).toString('base64'), 'not a key at all!']) {
      assert.throws(() => createSecretBox(bad), /32 bytes/, bad);
    }
  });

  it('throws a clear error when any part was altered', () => {
    const box = createSecretBox(key);
    const sealed = box.seal('do not touch');
    const parts = sealed.split('.');
    for (const index of [1, 2, 3]) {
      const bytes = Buffer.from(parts[index]!, 'base64url');
      bytes[0] = bytes[0]! ^ 0x01;
      const altered = [...parts];
      altered[index] = bytes.toString('base64url');
      assert.throws(() => box.open(altered.join('.')), (err: unknown) => err instanceof SealedValueError && /altered|another key/.test(err.message));
    }
  });

  it('throws when opened with another key', () => {
    const sealed = createSecretBox(key).seal('mine');
    assert.throws(() => createSecretBox(generateKey()).open(sealed), SealedValueError);
  });

  it('rejects malformed and unknown-version values without decrypting', () => {
    const box = createSecretBox(key);
    const [, iv, tag, ct] = box.seal('x').split('.');
    for (const bad of ['', 'v1', 'v1.a.b', `v2.${iv}.${tag}.${ct}`, `v1.${iv}.${tag}.${ct}.extra`, `v1.${iv}!.${tag}.${ct}`, `v1.${iv}.AAAA.${ct}`]) {
      assert.throws(() => box.open(bad), SealedValueError, bad);
    }
  });
});

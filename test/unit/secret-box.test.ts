import assert from 'node:assert/strict';
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { SealedValueError, createSecretBox, generateKey, keyIdOf } from '../../src/lib/secret-box.ts';

/** A value in the format written before row identities were bound: `v1.iv.tag.ciphertext`, AAD "v1". */
function sealV1(key: string, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', Buffer.from(key, 'hex'), iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from('v1'));
  const ct = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ct.toString('base64url')].join('.');
}

const ROW = 'space_bindings:p1:s1';

describe('secret box', () => {
  const key = generateKey();

  it('generates 32-byte keys as 64 hex characters, different each time', () => {
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.notEqual(generateKey(), key);
  });

  it('round-trips text, including empty and non-ASCII strings', () => {
    const box = createSecretBox({ current: key });
    for (const plain of ['hf_abcdefghijklmnop', '', 'clé 🔑 \n done', 'x'.repeat(100_000)]) {
      assert.equal(box.open(box.seal(plain, ROW), ROW), plain);
    }
  });

  it('seals to a versioned base64url format with a key id that hides the key and the plaintext, never repeating', () => {
    const box = createSecretBox({ current: key });
    const a = box.seal('hf_secret_token', ROW);
    const b = box.seal('hf_secret_token', ROW);
    const id = createHash('sha256').update(Buffer.from(key, 'hex')).digest('hex').slice(0, 8);
    assert.equal(keyIdOf(key), id);
    assert.equal(box.currentKeyId, id);
    assert.match(a, new RegExp(`^v2\\.${id}\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$`));
    assert.equal(a.includes(key.slice(0, 16)), false);
    assert.notEqual(a, b);
    assert.doesNotMatch(a, /hf_secret_token/);
    assert.doesNotMatch(Buffer.from(a.split('.')[4]!, 'base64url').toString('latin1'), /secret/);
  });

  it('binds a value to its row: opening it for another row fails authentication', () => {
    const box = createSecretBox({ current: key });
    const sealed = box.seal('mine', 'space_bindings:p1:s1');
    for (const other of ['space_bindings:p1:s2', 'space_bindings:p2:s1', 'users:p1:hf_token', 'space_bindings:p1:s1 ']) {
      assert.throws(() => box.open(sealed, other), (err: unknown) => err instanceof SealedValueError && /another row/.test(err.message), other);
    }
  });

  it('refuses an empty row identity on both sides', () => {
    const box = createSecretBox({ current: key });
    assert.throws(() => box.seal('x', ''), /identity/);
    assert.throws(() => box.open(box.seal('x', ROW), ''), /identity/);
  });

  it('accepts the same key as base64', () => {
    const base64 = Buffer.from(key, 'hex').toString('base64');
    assert.equal(createSecretBox({ current: base64 }).open(createSecretBox({ current: key }).seal('same key', ROW), ROW), 'same key');
    const base64url = Buffer.from(key, 'hex').toString('base64url');
    assert.equal(createSecretBox({ current: base64url }).open(createSecretBox({ current: key }).seal('same key', ROW), ROW), 'same key');
    assert.equal(keyIdOf(base64url), keyIdOf(key));
  });

  it('rejects keys that are not 32 bytes, current or previous', () => {
    for (const bad of ['', 'abc', 'f'.repeat(63), randomBytes(16).toString('hex'), randomBytes(31).toString('base64'), 'not a key at all!']) {
      assert.throws(() => createSecretBox({ current: bad }), /32 bytes/, bad);
      assert.throws(() => createSecretBox({ current: key, previous: [bad] }), /32 bytes/, bad);
    }
  });

  it('throws a clear error when any part was altered, the key id included', () => {
    const box = createSecretBox({ current: key });
    const sealed = box.seal('do not touch', ROW);
    const parts = sealed.split('.');
    for (const index of [2, 3, 4]) {
      const bytes = Buffer.from(parts[index]!, 'base64url');
      bytes[0] = bytes[0]! ^ 0x01;
      const altered = [...parts];
      altered[index] = bytes.toString('base64url');
      assert.throws(() => box.open(altered.join('.'), ROW), (err: unknown) => err instanceof SealedValueError && /altered/.test(err.message));
    }
    const relabelled = [...parts];
    relabelled[1] = '00000000';
    assert.throws(() => box.open(relabelled.join('.'), ROW), (err: unknown) => err instanceof SealedValueError && /unknown key/.test(err.message));
  });

  it('opens values sealed under a previous key and seals only under the current one', () => {
    const oldKey = generateKey();
    const sealedOld = createSecretBox({ current: oldKey }).seal('old secret', ROW);
    const ring = createSecretBox({ current: key, previous: [oldKey] });
    assert.equal(ring.open(sealedOld, ROW), 'old secret');
    assert.equal(ring.isCurrent(sealedOld), false);
    const resealed = ring.seal('old secret', ROW);
    assert.equal(ring.isCurrent(resealed), true);
    assert.equal(resealed.split('.')[1], keyIdOf(key));
    assert.equal(createSecretBox({ current: key }).open(resealed, ROW), 'old secret');
    assert.throws(() => createSecretBox({ current: key }).open(sealedOld, ROW), (err: unknown) => err instanceof SealedValueError && /unknown key/.test(err.message));
  });

  it('throws when opened with another key', () => {
    const sealed = createSecretBox({ current: key }).seal('mine', ROW);
    assert.throws(() => createSecretBox({ current: generateKey() }).open(sealed, ROW), SealedValueError);
  });

  it('still opens v1 values (constant AAD) under the current or a previous key, and never counts them current', () => {
    const oldKey = generateKey();
    const ring = createSecretBox({ current: key, previous: [oldKey] });
    assert.equal(ring.open(sealV1(key, 'legacy current'), ROW), 'legacy current');
    assert.equal(ring.open(sealV1(oldKey, 'legacy previous'), 'users:u1:hf_token'), 'legacy previous');
    assert.equal(ring.isCurrent(sealV1(key, 'x')), false);
    assert.throws(() => createSecretBox({ current: generateKey() }).open(sealV1(key, 'x'), ROW), SealedValueError);
  });

  it('rejects malformed and unknown-version values without decrypting', () => {
    const box = createSecretBox({ current: key });
    const [, id, iv, tag, ct] = box.seal('x', ROW).split('.');
    const bad = ['', 'v1', 'v1.a.b', 'v2', `v2.${id}.${iv}.${tag}`, `v3.${id}.${iv}.${tag}.${ct}`, `v2.${id}.${iv}.${tag}.${ct}.extra`,
      `v2.${id}.${iv}!.${tag}.${ct}`, `v2.${id}.${iv}.AAAA.${ct}`, `v2.XYZ.${iv}.${tag}.${ct}`, `v1.${iv}.${tag}.${ct}.extra`];
    for (const value of bad) assert.throws(() => box.open(value, ROW), SealedValueError, value);
  });
});

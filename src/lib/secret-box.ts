import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';

// Sealed values: `v2.<keyId>.<iv>.<tag>.<ciphertext>` (base64url parts). The key id names the key without revealing
// it; the version, the key id and the row's identity (the caller's AAD) are all authenticated, so a value copied to
// another row, or relabelled with another key id, fails to open. `v1.<iv>.<tag>.<ciphertext>` values, sealed before
// row identities were bound, still open (with their constant AAD) until `orchestrator keys rotate` re-seals them.

const VERSION = 'v2';
const LEGACY_VERSION = 'v1';
const KEY_BYTES = 32;
// 96-bit IVs are what GCM is specified for; random ones are safe for far more seals than we make.
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const KEY_ID = /^[0-9a-f]{8}$/;

export class SealedValueError extends Error {
  override name = 'SealedValueError';
}

export interface SecretBox {
  /** `aad` is the identity of the row the value belongs to, e.g. `space_bindings:<project>:<server>`. */
  seal(plain: string, aad: string): string;
  open(sealed: string, aad: string): string;
  /** Sealed in the current format under the current key: rotation leaves it alone. */
  isCurrent(sealed: string): boolean;
  readonly currentKeyId: string;
}

export interface SecretKeyring {
  current: string;
  /** Keys that may still have sealed values: opened, never used to seal. */
  previous?: readonly string[];
}

function parseKey(key: string): Buffer {
  const trimmed = key.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    const bytes = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    if (bytes.length === KEY_BYTES) return bytes;
  }
  throw new Error(`encryption key must be ${KEY_BYTES} bytes given as 64 hex characters or base64`);
}

/** The first 8 hex characters of the key's SHA-256: enough to pick among a few keys, nothing about the key. */
export function keyIdOf(key: string): string {
  return createHash('sha256').update(parseKey(key)).digest('hex').slice(0, 8);
}

function decodePart(part: string | undefined, expectedBytes?: number): Buffer {
  if (part === undefined || !BASE64URL.test(part)) throw new SealedValueError('sealed value is malformed');
  const bytes = Buffer.from(part, 'base64url');
  if (expectedBytes !== undefined && bytes.length !== expectedBytes) {
    throw new SealedValueError('sealed value is malformed');
  }
  return bytes;
}

// The version and the key id have fixed shapes without dots, so this joining cannot make two inputs collide.
const boundAad = (keyId: string, aad: string) => Buffer.from(`${VERSION}.${keyId}.${aad}`, 'utf8');

function decrypt(key: Buffer, iv: Buffer, tag: Buffer, ciphertext: Buffer, aad: Buffer): string | undefined {
  const decipher = createDecipheriv('aes-256-gcm', key, iv, { authTagLength: TAG_BYTES });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  try {
    return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

const failedAuthentication = () =>
  new SealedValueError('sealed value failed authentication: it was altered, sealed for another row or with another key');

export function createSecretBox(keyring: SecretKeyring): SecretBox {
  const current = { id: keyIdOf(keyring.current), bytes: parseKey(keyring.current) };
  const keys = [current];
  for (const k of keyring.previous ?? []) {
    const bytes = parseKey(k);
    if (!keys.some((known) => known.bytes.equals(bytes))) keys.push({ id: keyIdOf(k), bytes });
  }

  function requireAad(aad: string): void {
    // An empty identity would quietly make values swappable again.
    if (aad === '') throw new Error('a sealed value needs the identity of its row as AAD');
  }

  function openLegacy(parts: string[]): string {
    if (parts.length !== 4) throw new SealedValueError('sealed value is malformed');
    const [iv, tag, ciphertext] = [decodePart(parts[1], IV_BYTES), decodePart(parts[2], TAG_BYTES), decodePart(parts[3])];
    // v1 named no key: try each one.
    for (const key of keys) {
      const plain = decrypt(key.bytes, iv, tag, ciphertext, Buffer.from(LEGACY_VERSION));
      if (plain !== undefined) return plain;
    }
    throw failedAuthentication();
  }

  return {
    currentKeyId: current.id,

    seal(plain, aad) {
      requireAad(aad);
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.bytes, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(boundAad(current.id, aad));
      const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return [VERSION, current.id, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
    },

    open(sealed, aad) {
      requireAad(aad);
      const parts = sealed.split('.');
      if (parts[0] === LEGACY_VERSION) return openLegacy(parts);
      if (parts[0] !== VERSION) throw new SealedValueError('sealed value has an unsupported version');
      if (parts.length !== 5 || !KEY_ID.test(parts[1]!)) throw new SealedValueError('sealed value is malformed');
      const keyId = parts[1]!;
      const [iv, tag, ciphertext] = [decodePart(parts[2], IV_BYTES), decodePart(parts[3], TAG_BYTES), decodePart(parts[4])];
      // Ids are 32 bits: two keys could share one, so every key with the id gets its try.
      const candidates = keys.filter((k) => k.id === keyId);
      if (candidates.length === 0) throw new SealedValueError(`sealed value was sealed with an unknown key (id ${keyId})`);
      for (const key of candidates) {
        const plain = decrypt(key.bytes, iv, tag, ciphertext, boundAad(keyId, aad));
        if (plain !== undefined) return plain;
      }
      throw failedAuthentication();
    },

    isCurrent(sealed) {
      const parts = sealed.split('.');
      return parts.length === 5 && parts[0] === VERSION && parts[1] === current.id;
    },
  };
}

export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}

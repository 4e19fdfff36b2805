import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const VERSION = 'v1';
const KEY_BYTES = 32;
// 96-bit IVs are what GCM is specified for; random ones are safe for far more seals than we make.
const IV_BYTES = 12;
const TAG_BYTES = 16;
const BASE64URL = /^[A-Za-z0-9_-]*$/;

export class SealedValueError extends Error {
  override name = 'SealedValueError';
}

export interface SecretBox {
  seal(plain: string): string;
  open(sealed: string): string;
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

function decodePart(part: string | undefined, expectedBytes?: number): Buffer {
  if (part === undefined || !BASE64URL.test(part)) throw new SealedValueError('sealed value is malformed');
  const bytes = Buffer.from(part, 'base64url');
  if (expectedBytes !== undefined && bytes.length !== expectedBytes) {
    throw new SealedValueError('sealed value is malformed');
  }
  return bytes;
}

export function createSecretBox(key: string): SecretBox {
  const keyBytes = parseKey(key);
  // The version is authenticated too, so a future format cannot be confused with this one.
  const aad = Buffer.from(VERSION);

  return {
    seal(plain) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', keyBytes, iv, { authTagLength: TAG_BYTES });
      cipher.setAAD(aad);
      const ciphertext = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
      const tag = cipher.getAuthTag();
      return [VERSION, iv.toString('base64url'), tag.toString('base64url'), ciphertext.toString('base64url')].join('.');
    },

    open(sealed) {
      const parts = sealed.split('.');
      if (parts.length !== 4) throw new SealedValueError('sealed value is malformed');
      if (parts[0] !== VERSION) throw new SealedValueError('sealed value has an unsupported version');
      const iv = decodePart(parts[1], IV_BYTES);
      const tag = decodePart(parts[2], TAG_BYTES);
      const ciphertext = decodePart(parts[3]);
      const decipher = createDecipheriv('aes-256-gcm', keyBytes, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(aad);
      decipher.setAuthTag(tag);
      try {
        return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
      } catch {
        throw new SealedValueError('sealed value failed authentication: it was altered or sealed with another key');
      }
    },
  };
}

export function generateKey(): string {
  return randomBytes(KEY_BYTES).toString('hex');
}

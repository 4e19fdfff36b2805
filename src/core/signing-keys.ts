import { importJWK, type CryptoKey, type JWK } from 'jose';

// ES256 signing keys for access tokens when several API replicas run: each replica signs with the first key and
// verifies with any, and the public halves are published at /.well-known/jwks.json for other services.
// Rotation: put the new key first, keep the old one listed until every token it signed has expired (15 minutes).

export interface SigningKeys {
  current(): { kid: string; key: CryptoKey };
  verifyKey(kid: string): CryptoKey | undefined;
  publicJwks(): Record<string, unknown>[];
}

export class SigningKeysError extends Error {
  override name = 'SigningKeysError';
}

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k'];

/** `raw` is a JWK set (`{"keys":[...]}`) or an array of private P-256 JWKs, each with a distinct `kid`. */
export async function loadSigningKeys(raw: string): Promise<SigningKeys> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new SigningKeysError('JWT_SIGNING_KEYS is not JSON');
  }
  const list = Array.isArray(parsed) ? parsed : (parsed as { keys?: unknown })?.keys;
  if (!Array.isArray(list) || list.length === 0) throw new SigningKeysError('JWT_SIGNING_KEYS needs at least one key');
  const keys: Array<{ kid: string; privateKey: CryptoKey; publicKey: CryptoKey; publicJwk: Record<string, unknown> }> = [];
  for (const [i, entry] of list.entries()) {
    const jwk = entry as JWK;
    if (jwk?.kty !== 'EC' || jwk.crv !== 'P-256' || typeof jwk.d !== 'string') throw new SigningKeysError(`key ${i + 1} must be a private P-256 (ES256) JWK`);
    if (typeof jwk.kid !== 'string' || jwk.kid === '') throw new SigningKeysError(`key ${i + 1} needs a kid`);
    if (keys.some((k) => k.kid === jwk.kid)) throw new SigningKeysError(`key ${i + 1} repeats the kid of another key`);
    const publicJwk: Record<string, unknown> = Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.includes(k) && k !== 'key_ops' && k !== 'ext'));
    Object.assign(publicJwk, { alg: 'ES256', use: 'sig' });
    try {
      keys.push({
        kid: jwk.kid,
        privateKey: (await importJWK({ ...jwk, alg: 'ES256' }, 'ES256')) as CryptoKey,
        publicKey: (await importJWK(publicJwk as JWK, 'ES256')) as CryptoKey,
        publicJwk,
      });
    } catch {
      throw new SigningKeysError(`key ${i + 1} is not a valid P-256 key`);
    }
  }
  const byKid = new Map(keys.map((k) => [k.kid, k.publicKey]));
  return {
    current: () => ({ kid: keys[0]!.kid, key: keys[0]!.privateKey }),
    verifyKey: (kid) => byKid.get(kid),
    publicJwks: () => keys.map((k) => ({ ...k.publicJwk })),
  };
}

import { randomUUID } from 'node:crypto';
import { SignJWT, createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';
import { loadSigningKeys, type SigningKeys } from './signing-keys.ts';

// `reason` is safe to show a caller: it names the kind of failure, never token contents or keys.
export class InvalidTokenError extends Error {
  override name = 'InvalidTokenError';
  constructor(readonly reason: string) {
    super(`invalid token: ${reason}`);
  }
}

export interface TokenService {
  sign(claims: { sub: string; login: string }): Promise<string>;
  verify(token: string): Promise<{ userId: string; login: string }>;
  /** The public keys tokens are signed with (ES256), as served at /.well-known/jwks.json; empty with HS256. */
  publicJwks(): { keys: Record<string, unknown>[] };
  readonly ttlSeconds: number;
}

/** Access tokens live at most this long: there is no revocation list, so a stolen one is useful only briefly. */
export const MAX_ACCESS_TOKEN_SECONDS = 15 * 60;

// HS256 needs a key at least as long as its 256-bit output to keep its security margin.
const MIN_SECRET_LENGTH = 32;
const CLOCK_TOLERANCE_SECONDS = 5;
const SYMMETRIC_ALGORITHMS = ['HS256'];
const ASYMMETRIC_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'];

function reasonFor(err: unknown): string | undefined {
  if (err instanceof joseErrors.JWTExpired) return 'token expired';
  if (err instanceof joseErrors.JWTClaimValidationFailed) return 'token claims rejected';
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) return 'signature invalid';
  if (err instanceof joseErrors.JOSEAlgNotAllowed) return 'algorithm not allowed';
  if (err instanceof joseErrors.JWKSNoMatchingKey || err instanceof joseErrors.JWKSMultipleMatchingKeys) return 'no matching key';
  if (err instanceof joseErrors.JWSInvalid || err instanceof joseErrors.JWTInvalid) return 'malformed token';
  if (err instanceof joseErrors.JOSENotSupported) return 'unsupported token';
  // A broken or unreachable key set is a server-side failure, not a bad token.
  if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid) return undefined;
  if (err instanceof joseErrors.JOSEError) return 'invalid token';
  return undefined;
}

export function createTokenService(opts: {
  secret?: string;
  jwksUrl?: string;
  issuer: string;
  audience: string;
  ttlSeconds: number;
  /** ES256 keys: the first signs, all verify (rotation: add the new key first, drop the old after a token lifetime). */
  signingKeys?: SigningKeys;
  /** Refuses tokens whose subject is no (longer a) user; absent: any subject passes. */
  subjectExists?: (sub: string) => Promise<boolean>;
}): TokenService {
  const { secret, jwksUrl, issuer, audience, ttlSeconds, signingKeys, subjectExists } = opts;
  if (!secret && !jwksUrl && !signingKeys) throw new Error('token service needs a JWT secret, signing keys or a JWKS URL');
  if (secret && secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`JWT secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error('token TTL must be a positive whole number of seconds');
  if (ttlSeconds > MAX_ACCESS_TOKEN_SECONDS) throw new Error(`token TTL must be at most ${MAX_ACCESS_TOKEN_SECONDS} seconds`);

  const secretKey = secret ? new TextEncoder().encode(secret) : undefined;
  const remoteKeys = jwksUrl ? createRemoteJWKSet(new URL(jwksUrl)) : undefined;
  // With signing keys configured, HS256 is not accepted: the shared secret then signs nothing.
  const acceptsSecret = secretKey !== undefined && signingKeys === undefined;
  const algorithms = [...(acceptsSecret ? SYMMETRIC_ALGORITHMS : []), ...(remoteKeys || signingKeys ? ASYMMETRIC_ALGORITHMS : [])];

  // Pick the key by the token's declared algorithm; `algorithms` above stops an HS256 token
  // from being checked against a public key (algorithm confusion).
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === 'HS256' && acceptsSecret) return secretKey!;
    const local = header.kid === undefined ? undefined : signingKeys?.verifyKey(header.kid);
    if (local) return local;
    if (remoteKeys) return remoteKeys(header, token);
    if (signingKeys) throw new joseErrors.JWKSNoMatchingKey();
    throw new joseErrors.JOSEAlgNotAllowed('algorithm not allowed');
  };

  return {
    ttlSeconds,

    publicJwks() {
      return { keys: signingKeys?.publicJwks() ?? [] };
    },

    async sign(claims) {
      if (!secretKey && !signingKeys) throw new Error('signing needs JWT_SECRET or JWT_SIGNING_KEYS');
      const jwt = new SignJWT({ login: claims.login })
        .setSubject(claims.sub)
        .setIssuer(issuer)
        .setAudience(audience)
        .setJti(randomUUID())
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`);
      if (signingKeys) {
        const { kid, key } = signingKeys.current();
        return jwt.setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid }).sign(key);
      }
      return jwt.setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(secretKey!);
    },

    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer,
          audience,
          algorithms,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['sub', 'exp', 'iat'],
        }));
      } catch (err) {
        const reason = reasonFor(err);
        // Anything else (JWKS endpoint down, timeouts) is our fault, not the caller's: let it surface.
        if (reason === undefined) throw err;
        throw new InvalidTokenError(reason);
      }
      const { sub, login, iat } = payload;
      if (typeof sub !== 'string' || sub === '' || typeof login !== 'string' || login === '') {
        throw new InvalidTokenError('token claims rejected');
      }
      // A token from the future was minted by a skewed or forged issuer; jose checks iat only with a max age.
      if (typeof iat !== 'number' || iat > Date.now() / 1000 + CLOCK_TOLERANCE_SECONDS) throw new InvalidTokenError('token issued in the future');
      if (subjectExists && !(await subjectExists(sub))) throw new InvalidTokenError('unknown subject');
      return { userId: sub, login };
    },
  };
}

/** The token service as configured: ES256 with JWT_SIGNING_KEYS when set, else HS256 with JWT_SECRET. */
export async function createConfiguredTokenService(
  jwt: { secret?: string; jwksUrl?: string; issuer: string; audience: string; ttlSeconds: number; signingKeysJson?: string },
  subjectExists?: (sub: string) => Promise<boolean>,
): Promise<TokenService> {
  const { signingKeysJson, ...rest } = jwt;
  const signingKeys = signingKeysJson === undefined ? undefined : await loadSigningKeys(signingKeysJson);
  return createTokenService({ ...rest, ...(signingKeys ? { signingKeys } : {}), ...(subjectExists ? { subjectExists } : {}) });
}

import { SignJWT, createRemoteJWKSet, errors as joseErrors, jwtVerify } from 'jose';
import type { JWTPayload, JWTVerifyGetKey } from 'jose';

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
}

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
}): TokenService {
  const { secret, jwksUrl, issuer, audience, ttlSeconds } = opts;
  if (!secret && !jwksUrl) throw new Error('token service needs a JWT secret or a JWKS URL');
  if (secret && secret.length < MIN_SECRET_LENGTH) {
    throw new Error(`JWT secret must be at least ${MIN_SECRET_LENGTH} characters`);
  }
  if (!Number.isInteger(ttlSeconds) || ttlSeconds <= 0) throw new Error('token TTL must be a positive whole number of seconds');

  const secretKey = secret ? new TextEncoder().encode(secret) : undefined;
  const remoteKeys = jwksUrl ? createRemoteJWKSet(new URL(jwksUrl)) : undefined;
  const algorithms = [...(secretKey ? SYMMETRIC_ALGORITHMS : []), ...(remoteKeys ? ASYMMETRIC_ALGORITHMS : [])];

  // Pick the key by the token's declared algorithm; `algorithms` above stops an HS256 token
  // from being checked against a public key (algorithm confusion).
  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (header.alg === 'HS256' && secretKey) return secretKey;
    if (remoteKeys) return remoteKeys(header, token);
    throw new joseErrors.JOSEAlgNotAllowed('algorithm not allowed');
  };

  return {
    async sign(claims) {
      if (!secretKey) throw new Error('signing needs JWT_SECRET');
      return new SignJWT({ login: claims.login })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(claims.sub)
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime(`${ttlSeconds}s`)
        .sign(secretKey);
    },

    async verify(token) {
      let payload: JWTPayload;
      try {
        ({ payload } = await jwtVerify(token, getKey, {
          issuer,
          audience,
          algorithms,
          clockTolerance: CLOCK_TOLERANCE_SECONDS,
          requiredClaims: ['sub', 'exp'],
        }));
      } catch (err) {
        const reason = reasonFor(err);
        // Anything else (JWKS endpoint down, timeouts) is our fault, not the caller's: let it surface.
        if (reason === undefined) throw err;
        throw new InvalidTokenError(reason);
      }
      const { sub, login } = payload;
      if (typeof sub !== 'string' || sub === '' || typeof login !== 'string' || login === '') {
        throw new InvalidTokenError('token claims rejected');
      }
      return { userId: sub, login };
    },
  };
}

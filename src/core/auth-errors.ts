import { DomainError } from './errors.ts';

// Sign-in and token errors. Messages are shown to callers: they never hold a token, a state or a provider's words.

/** A callback, code or request that cannot complete a sign-in (bad or replayed state, a provider's refusal). */
export class SignInError extends DomainError {}

/** A refresh token that is unknown, expired, revoked or already used. */
export class InvalidRefreshTokenError extends DomainError {
  constructor() {
    super('InvalidRefreshToken', 'the refresh token is not valid: sign in again');
  }
}

export class UnknownProviderError extends DomainError {
  constructor(provider: string) {
    super('UnknownProvider', `no sign-in provider "${provider.slice(0, 40)}" is configured`);
  }
}

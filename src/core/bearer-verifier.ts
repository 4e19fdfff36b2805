import { looksLikeApiKey, type ApiKeys } from './api-keys.ts';
import type { TokenService } from './auth-tokens.ts';
import type { KeyLimits } from './caller-scope.ts';

export interface VerifiedBearer {
  userId: string;
  login: string;
  /** Set when the bearer is an API key: what it limits the caller to. */
  key?: KeyLimits;
}

/** One check for every bearer: `orch_…` is an API key, anything else an access token. */
export function createBearerVerifier(deps: { tokens: Pick<TokenService, 'verify'>; apiKeys: Pick<ApiKeys, 'verify'> }) {
  return {
    verify(token: string): Promise<VerifiedBearer> {
      return looksLikeApiKey(token) ? deps.apiKeys.verify(token) : deps.tokens.verify(token);
    },
  };
}

import type { Db } from '../db/create-db.ts';
import { DomainError } from './errors.ts';
import { providerToken } from './identities.ts';
import type { SecretBox } from './sealed-secrets.ts';
import { tokenTransportAllowed } from './space-bindings.ts';
import type { ActsAs } from './task-model.ts';

// A registry server that acts as the user: each call carries the submitting user's own provider token (from signing
// in), looked up when the call is made. The token is never in a task's arguments, a route plan or workflow history.

export { ACTS_AS_PROVIDERS, type ActsAs } from './task-model.ts';

const PROVIDER_NAMES: Record<ActsAs, string> = { github: 'GitHub' };

/** The submitter never linked the provider (or the sealed token cannot be opened): the call would go unauthenticated. */
export class ProviderTokenMissingError extends DomainError {
  constructor(readonly provider: ActsAs, serverName: string) {
    super(
      'ProviderTokenMissing',
      `the server "${serverName}" acts as you on ${PROVIDER_NAMES[provider]}, and you have no ${PROVIDER_NAMES[provider]} account linked: sign in with ${PROVIDER_NAMES[provider]} (or link it from your account) and submit the task again`,
      { provider, server: serverName },
    );
  }
}

/** The server's URL would carry the token over plain http to a host not trusted for it. */
export class ProviderTokenTransportError extends DomainError {
  constructor(serverName: string) {
    super('InsecureTokenTransport', `the server "${serverName}" acts as the user but its URL is not https: no user token is sent to it`, { server: serverName });
  }
}

/**
 * Someone else's private server: a project routes to its members' private servers, but a user's own token goes only
 * to a server a platform admin made public or to one the user registered. Otherwise any member could register a
 * server that collects the tokens of everyone else in the project.
 */
export class ProviderTokenRefusedError extends DomainError {
  constructor(readonly provider: ActsAs, serverName: string) {
    super(
      'ProviderTokenRefused',
      `the server "${serverName}" acts as the user on ${PROVIDER_NAMES[provider]}, but it is another user's private server: your ${PROVIDER_NAMES[provider]} token goes only to public servers and your own`,
      { provider, server: serverName },
    );
  }
}

/** What deciding about a user's token needs to know of a server (its current registry row). */
export interface ActingAsServer {
  name: string;
  actsAs: ActsAs | null;
  visibility: 'private' | 'public';
  ownerId: string | null;
}

export function createActingAs(deps: {
  db: Db;
  secrets: SecretBox;
  /** Hosts a token may be sent to over plain http (loopback during development), as for Space tokens. */
  allowsPlainHttp: (url: URL) => boolean;
}) {
  return {
    /**
     * The headers a call to `server` at `url` carries for the user `userId`: none for a server that does not act as
     * the user. For the worker only; never log the result.
     */
    async headersFor(userId: string, server: ActingAsServer, url: string): Promise<Record<string, string>> {
      if (!server.actsAs) return {};
      if (server.visibility !== 'public' && server.ownerId !== userId) throw new ProviderTokenRefusedError(server.actsAs, server.name);
      if (!tokenTransportAllowed(url, deps.allowsPlainHttp)) throw new ProviderTokenTransportError(server.name);
      let token: string | undefined;
      try {
        token = await providerToken(deps.db, deps.secrets, userId, server.actsAs);
      } catch {
        // A seal that no longer opens (its key was dropped) is as good as no token: the user signs in again.
        token = undefined;
      }
      if (!token) throw new ProviderTokenMissingError(server.actsAs, server.name);
      return { Authorization: `Bearer ${token}` };
    },
  };
}

export type ActingAs = ReturnType<typeof createActingAs>;

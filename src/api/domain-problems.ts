import { InvalidRefreshTokenError, SignInError, UnknownProviderError } from '../core/auth-errors.ts';
import { ConflictError, DomainError, InvalidRequestError, NotFoundError, UnavailableError } from '../core/errors.ts';
import { LimitExceededError } from '../core/limits.ts';
import { ResultGoneError } from '../core/results.ts';
import { Problem } from './problem.ts';
import { limitProblem } from './rate-limit.ts';

/** Domain errors → HTTP problems. The only place that knows both. */
export function domainProblem(err: unknown): Problem | undefined {
  if (!(err instanceof DomainError)) return undefined;
  const extra = safeDetails(err.details);
  if (err instanceof NotFoundError) return new Problem(404, err.code, 'Not Found', err.message, extra);
  if (err instanceof ConflictError) return new Problem(409, err.code, 'Conflict', err.message, extra);
  if (err instanceof LimitExceededError) return limitProblem(err, extra ?? {});
  if (err instanceof UnknownProviderError) return new Problem(404, err.code, 'Not Found', err.message);
  if (err instanceof InvalidRefreshTokenError) return new Problem(401, err.code, 'Unauthorized', err.message);
  if (err instanceof SignInError) {
    const taken = err.code === 'IdentityTaken' || err.code === 'ProviderAlreadyLinked';
    return new Problem(taken ? 409 : 400, err.code, taken ? 'Conflict' : 'Bad Request', err.message);
  }
  if (err instanceof ResultGoneError) return new Problem(410, err.code, 'Gone', err.message);
  if (err instanceof InvalidRequestError) {
    return err.code === 'InvalidCursor'
      ? new Problem(400, err.code, 'Bad Request', err.message)
      : new Problem(422, err.code, 'Unprocessable Content', err.message, extra);
  }
  if (err instanceof UnavailableError) {
    // The Hub not answering is a bad gateway; our own scheduler being down is a 503.
    const status = err.code === 'HubUnavailable' || err.code === 'ProviderUnavailable' ? 502 : 503;
    return new Problem(status, err.code, status === 502 ? 'Bad Gateway' : 'Service Unavailable', err.message, undefined, {
      headers: status === 503 ? { 'Retry-After': '5' } : {},
    });
  }
  if (err.code === 'Forbidden') return new Problem(403, err.code, 'Forbidden', err.message);
  return undefined;
}

/** Details may carry internal causes; only plain identifiers reach clients. */
function safeDetails(details: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!details) return undefined;
  const { cause: _cause, ...rest } = details;
  return rest;
}

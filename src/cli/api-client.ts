import { CliError, EXIT } from './exit-codes.ts';

// The REST API as the CLI sees it: JSON in, JSON out, problem+json turned into an ApiError a person can read.

export class ApiError extends CliError {
  override name = 'ApiError';
  constructor(
    readonly status: number,
    readonly code: string,
    detail: string,
    readonly body: unknown,
  ) {
    super(`${detail} (${status} ${code})`, status === 400 || status === 422 ? EXIT.usage : EXIT.failed);
  }
}

export interface ApiClient {
  readonly api: string;
  json<T = any>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<T>;
  /** The raw response, for bodies that are not JSON (results) and streams (events); non-2xx already thrown. */
  raw(method: string, path: string, init?: { headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response>;
}

export function createApiClient(opts: { api: string; token?: string; fetch?: typeof fetch }): ApiClient {
  const doFetch = opts.fetch ?? fetch;

  async function send(method: string, path: string, init: { body?: string; headers?: Record<string, string>; signal?: AbortSignal }): Promise<Response> {
    const headers: Record<string, string> = { Accept: 'application/json', ...init.headers };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (init.body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await doFetch(`${opts.api}${path}`, { method, headers, body: init.body, signal: init.signal });
    } catch (err) {
      if ((err as Error).name === 'AbortError') throw err;
      const cause = (err as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the API at ${opts.api}: ${cause?.code ?? cause?.message ?? (err as Error).message} (is it running? npm start)`);
    }
    if (!res.ok) throw await toApiError(res);
    return res;
  }

  return {
    api: opts.api,
    async json(method, path, body, headers) {
      const res = await send(method, path, { ...(body !== undefined ? { body: JSON.stringify(body) } : {}), ...(headers ? { headers } : {}) });
      const text = await res.text();
      return (text ? JSON.parse(text) : undefined) as any;
    },
    raw(method, path, init = {}) {
      return send(method, path, init);
    },
  };
}

async function toApiError(res: Response): Promise<ApiError> {
  const text = await res.text().catch(() => '');
  let body: { code?: string; detail?: string; title?: string } = {};
  try {
    body = JSON.parse(text);
  } catch {
    // Not problem+json (a proxy's error page): the status says enough.
  }
  const code = body.code ?? 'HttpError';
  if (res.status === 401) {
    return new ApiError(401, code, `not signed in, or the token was refused: run orchestrator login${body.detail ? ` (${body.detail})` : ''}`, body);
  }
  return new ApiError(res.status, code, body.detail ?? body.title ?? (res.statusText || 'request failed'), body);
}

import { Readable } from 'node:stream';
import type { ReadableStream as NodeWebReadableStream } from 'node:stream/web';
import { createRepo, repoExists, uploadFile } from '@huggingface/hub';
import { BlobNotFoundError, type BlobStore } from '../../core/blob-store.ts';

// Large results in a Hugging Face dataset repository. Every put is one commit; the location pins that commit:
//   hf://datasets/OWNER/NAME@<40-hex commit oid>/<path>
// so a later put of the same key never changes what an older pointer reads.

export interface DatasetBlobStoreOptions {
  /** OWNER/NAME of the dataset repository. */
  repo: string;
  /** Hub base URL, e.g. https://huggingface.co (HF_ENDPOINT). */
  hubUrl: string;
  accessToken?: string;
  fetch?: typeof fetch;
}

export interface HfLocation {
  /** OWNER/NAME */
  repo: string;
  revision: string;
  path: string;
}

/** An upload (or repo creation) that failed. `permanent` marks failures a retry cannot fix (credentials, rights, bad input). */
export class HfDatasetUploadError extends Error {
  constructor(
    message: string,
    readonly permanent: boolean,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'HfDatasetUploadError';
  }
}

const SEGMENT = '[A-Za-z0-9][A-Za-z0-9._-]*';
const REPO_RE = new RegExp(`^${SEGMENT}/${SEGMENT}$`);
const LOCATION_RE = new RegExp(`^hf://datasets/(${SEGMENT}/${SEGMENT})@([A-Za-z0-9._-]+)/(.+)$`);

function validKey(key: string): boolean {
  return key.length > 0 && key.length <= 1000 && !key.split('/').some((s) => s === '' || s === '.' || s === '..') && !/[\0\\]/.test(key);
}

/** Splits `hf://datasets/OWNER/NAME@REV/path`; undefined for anything else. The path is taken literally. */
export function parseHfLocation(location: string): HfLocation | undefined {
  const m = LOCATION_RE.exec(location);
  if (!m || !validKey(m[3]!)) return undefined;
  return { repo: m[1]!, revision: m[2]!, path: m[3]! };
}

const PERMANENT_STATUSES = new Set([400, 401, 403, 413, 422]);

export function createDatasetBlobStore(opts: DatasetBlobStoreOptions): BlobStore {
  if (!REPO_RE.test(opts.repo)) throw new Error(`dataset repo "${opts.repo}" is not of the form OWNER/NAME`);
  const hubUrl = opts.hubUrl.replace(/\/+$/, '');
  const repo = { type: 'dataset' as const, name: opts.repo };
  const token = opts.accessToken;
  const doFetch = opts.fetch ?? fetch;
  const credentials = token ? { accessToken: token } : {};

  /** Never let the token reach a message, whatever the library or the server put in it. */
  function scrub(text: string): string {
    return token ? text.split(token).join('[redacted]') : text;
  }

  function uploadError(what: string, err: unknown): HfDatasetUploadError {
    const e = err as { statusCode?: unknown; message?: unknown; name?: unknown };
    const status = typeof e?.statusCode === 'number' ? e.statusCode : undefined;
    // The library rejects malformed tokens with a TypeError before any request: no retry fixes that.
    const permanent = (status !== undefined && PERMANENT_STATUSES.has(status)) || err instanceof TypeError;
    const detail = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err);
    return new HfDatasetUploadError(scrub(`${what} failed${status !== undefined ? ` (HTTP ${status})` : ''}: ${detail}`), permanent, status);
  }

  let repoReady: Promise<void> | undefined;
  function ensureRepo(): Promise<void> {
    repoReady ??= (async () => {
      let exists: boolean;
      try {
        exists = await repoExists({ repo, hubUrl, fetch: doFetch, ...credentials });
      } catch (err) {
        throw uploadError(`checking dataset ${opts.repo} on the Hub`, err);
      }
      if (exists) return;
      if (!token) throw new HfDatasetUploadError(`dataset ${opts.repo} does not exist and no Hugging Face token is configured to create it`, true);
      try {
        await createRepo({ repo, private: true, hubUrl, fetch: doFetch, accessToken: token });
      } catch (err) {
        // Someone else created it in between: that is what we wanted.
        if ((err as { statusCode?: unknown }).statusCode !== 409) throw uploadError(`creating dataset ${opts.repo}`, err);
      }
    })().catch((err: unknown) => {
      repoReady = undefined; // let the next attempt try again
      throw err;
    });
    return repoReady;
  }

  return {
    scheme: 'hf',

    // The pinned dataset URL is public by design: it is where the result lives.
    publicLocation: (location) => location,

    async put(key, data, mediaType) {
      if (!validKey(key)) throw new HfDatasetUploadError(`blob key "${key}" is not a usable repository path`, true);
      await ensureRepo();
      let oid: string | undefined;
      try {
        const out = await uploadFile({
          repo,
          file: { path: key, content: new Blob([new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength)], { type: mediaType }) },
          commitTitle: `Store ${key}`,
          hubUrl,
          fetch: doFetch,
          ...credentials,
        });
        oid = out?.commit.oid;
      } catch (err) {
        throw uploadError(`uploading ${key} (${data.length} bytes) to dataset ${opts.repo}`, err);
      }
      if (!oid || !/^[0-9a-f]{40}$/.test(oid)) {
        throw new HfDatasetUploadError(`uploading ${key} to dataset ${opts.repo} failed: the Hub answered no commit id`, false);
      }
      return { location: `hf://datasets/${opts.repo}@${oid}/${key}` };
    },

    async open(location) {
      const loc = parseHfLocation(location);
      if (!loc) throw new BlobNotFoundError(location);
      const url = `${hubUrl}/datasets/${loc.repo}/resolve/${encodeURIComponent(loc.revision)}/${loc.path.split('/').map(encodeURIComponent).join('/')}`;
      let res: Response;
      try {
        res = await doFetch(url, { headers: token ? { Authorization: `Bearer ${token}` } : {} });
      } catch (err) {
        throw new Error(scrub(`reading ${location} from the Hub failed: ${(err as Error).message ?? String(err)}`));
      }
      if (res.status === 404 || res.status === 410) {
        await res.body?.cancel();
        throw new BlobNotFoundError(location);
      }
      if (!res.ok || !res.body) {
        const reason = res.headers.get('X-Error-Message') ?? res.statusText;
        await res.body?.cancel();
        throw new Error(scrub(`reading ${location} from the Hub failed: HTTP ${res.status}${reason ? ` ${reason}` : ''}`));
      }
      const size = Number(res.headers.get('Content-Length') ?? res.headers.get('X-Linked-Size'));
      if (!Number.isSafeInteger(size) || size < 0) {
        await res.body.cancel();
        throw new Error(`reading ${location} from the Hub failed: no usable Content-Length`);
      }
      return { stream: Readable.fromWeb(res.body as unknown as NodeWebReadableStream<Uint8Array>), size };
    },
  };
}

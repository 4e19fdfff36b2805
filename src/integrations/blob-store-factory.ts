import path from 'node:path';
import type { BlobStore } from '../core/blob-store.ts';
import { createFileBlobStore } from './file-blob-store.ts';
import { createDatasetBlobStore } from './huggingface/dataset-blob-store.ts';

export interface BlobStoreDeps {
  /** Relative `file://` directories are resolved against this (the process's data or working directory). */
  baseDir: string;
  /** Hub base URL for `hf://` stores (HF_ENDPOINT); https://huggingface.co when unset. */
  hfEndpoint?: string;
  /** Token that may create and write the dataset (and read it, if private). */
  hfToken?: string;
}

/** Picks the backend named by a `RESULT_STORE` URI. */
export function createBlobStore(uri: string, deps: BlobStoreDeps): BlobStore {
  if (uri.startsWith('file://')) {
    // `file://./data` and `file://data` are relative; `file:///srv/data` is absolute.
    const raw = decodeURIComponent(uri.slice('file://'.length));
    if (raw === '') throw new Error(`result store "${uri}" names no directory`);
    const dir = path.isAbsolute(raw) ? raw : path.resolve(deps.baseDir, raw);
    return createFileBlobStore(dir);
  }
  if (uri.startsWith('hf://datasets/')) {
    const m = /^hf:\/\/datasets\/([A-Za-z0-9][A-Za-z0-9._-]*\/[A-Za-z0-9][A-Za-z0-9._-]*)\/?$/.exec(uri);
    if (!m) throw new Error(`result store "${uri}" must be hf://datasets/OWNER/NAME`);
    return createDatasetBlobStore({
      repo: m[1]!,
      hubUrl: deps.hfEndpoint || 'https://huggingface.co',
      ...(deps.hfToken ? { accessToken: deps.hfToken } : {}),
    });
  }
  throw new Error(`result store "${uri}" is not supported (use file://DIR or hf://datasets/OWNER/NAME)`);
}

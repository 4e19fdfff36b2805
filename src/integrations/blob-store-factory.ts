import path from 'node:path';
import type { BlobStore } from '../core/blob-store.ts';
import { createFileBlobStore } from './file-blob-store.ts';

export interface BlobStoreDeps {
  /** Relative `file://` directories are resolved against this (the process's data or working directory). */
  baseDir: string;
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
    throw new Error(`result store "${uri}": the Hugging Face dataset store is not available yet; use file://DIR`);
  }
  throw new Error(`result store "${uri}" is not supported (use file://DIR or hf://datasets/OWNER/NAME)`);
}

import type { Readable } from 'node:stream';

/** Where results too large to keep inline in Postgres go. `location` is what a result row's pointer holds. */
export interface BlobStore {
  /** URI scheme of the locations this store hands out, e.g. `file`. */
  readonly scheme: string;
  put(key: string, data: Buffer, mediaType: string): Promise<{ location: string }>;
  open(location: string): Promise<{ stream: Readable; size: number }>;
  /** The location as clients may see it: never a server path (older rows may hold one). */
  publicLocation(location: string): string;
}

/** The object behind a pointer is gone (deleted, or the location is not one this store serves). */
export class BlobNotFoundError extends Error {
  constructor(readonly location: string) {
    super(`blob not found: ${location}`);
    this.name = 'BlobNotFoundError';
  }
}

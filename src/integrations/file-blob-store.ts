import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BlobNotFoundError, type BlobStore } from '../core/blob-store.ts';

// Locations are `file-store:<key path>`: relative to the store's directory, so a pointer shown to a client says
// nothing of where the server keeps its files. Rows written before that hold absolute `file://` URLs; those
// still open, and are shown in the relative form.
const SCHEME = 'file-store:';

/** Keys become relative paths under `dir`; anything that could climb out or hide is removed. */
function keyToRelativePath(key: string): string {
  const parts = key
    .split(/[\\/]+/)
    .map((p) => p.replace(/[^A-Za-z0-9._-]/g, '_'))
    .filter((p) => p !== '' && p !== '.' && p !== '..')
    .map((p) => (p.startsWith('.') ? `_${p.slice(1)}` : p));
  if (parts.length === 0) throw new Error(`blob key "${key}" has no usable path segment`);
  return path.join(...parts);
}

export function createFileBlobStore(dir: string): BlobStore {
  const root = path.resolve(dir);

  /** The file a location names, if it is inside the store's directory. */
  function locationToPath(location: string): string | undefined {
    let file: string;
    if (location.startsWith(SCHEME)) {
      const key = location.slice(SCHEME.length);
      if (key === '' || key.includes('\0') || path.isAbsolute(key)) return undefined;
      file = path.resolve(root, ...key.split('/'));
    } else {
      try {
        file = path.resolve(fileURLToPath(location));
      } catch {
        return undefined;
      }
    }
    const rel = path.relative(root, file);
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) return undefined;
    return path.join(root, rel);
  }

  const locationOf = (file: string) => `${SCHEME}${path.relative(root, file).split(path.sep).join('/')}`;

  return {
    scheme: 'file-store',

    publicLocation(location) {
      const file = locationToPath(location);
      return file ? locationOf(file) : SCHEME;
    },

    async put(key, data) {
      const target = path.join(root, keyToRelativePath(key));
      await mkdir(path.dirname(target), { recursive: true });
      // Readers must never see a half-written file: write beside it, fsync, then rename over it.
      const tmp = `${target}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(data);
        await fh.sync();
      } catch (err) {
        await fh.close().catch(() => {});
        await rm(tmp, { force: true });
        throw err;
      }
      await fh.close();
      try {
        await rename(tmp, target);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
      return { location: locationOf(target) };
    },

    async open(location) {
      const file = locationToPath(location);
      if (!file) throw new BlobNotFoundError(location);
      let fh;
      try {
        fh = await open(file, 'r');
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT' || code === 'EISDIR' || code === 'ENOTDIR') throw new BlobNotFoundError(location);
        throw err;
      }
      try {
        const stat = await fh.stat();
        if (!stat.isFile()) throw new BlobNotFoundError(location);
        // The stream owns the handle from here, so a rename over the file cannot change what we read.
        const stream = fh.createReadStream();
        return { stream, size: stat.size };
      } catch (err) {
        await fh.close().catch(() => {});
        throw err;
      }
    },
  };
}

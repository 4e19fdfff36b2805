import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

/**
 * The `--import` value that runs TypeScript through tsx in a child process. Resolved with require.resolve, which
 * works whether this module was loaded as ESM or (under some test runners) compiled to CommonJS.
 */
export function tsxLoaderUrl(): string {
  return pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
}

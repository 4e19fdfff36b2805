import { z } from 'zod';

// Building blocks shared by the route schemas. Postgres text cannot hold U+0000, so no stored string may carry one;
// the JSON body middleware refuses NUL anywhere in a body too, this keeps each schema honest on its own.

export const NO_NUL = /^[^\u0000]*$/;

/** A string of at most `max` characters with no NUL. */
export function boundedText(max: number) {
  return z.string().max(max).regex(NO_NUL, 'must not contain NUL characters');
}

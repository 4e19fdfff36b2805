import type Koa from 'koa';

/**
 * Every response says `X-Content-Type-Options: nosniff`: a result is served with the media type its tool gave, and a
 * browser must not second-guess that into HTML or script. Set before the routes run so streamed bodies have it too;
 * the problem middleware keeps it on errors.
 */
export function noSniff(): Koa.Middleware {
  return async function noSniff(ctx, next) {
    ctx.set('X-Content-Type-Options', 'nosniff');
    await next();
  };
}

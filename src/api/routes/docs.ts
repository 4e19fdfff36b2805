import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import Router from '@koa/router';
import type Koa from 'koa';
import { z } from 'zod';
import type { ApiOperation } from '../api-operation.ts';
import { Problem } from '../problem.ts';

// Interactive docs from the swagger-ui-dist package, served by us: no CDN, so they work offline and leak nothing.
// Only the files the page loads are served, from a fixed list, so no request can name another file on disk.
const ASSETS: Record<string, string> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'text/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
  'favicon-16x16.png': 'image/png',
};
/** Our own start script: the CSP allows no inline script, so the page loads it like any asset. */
const START_SCRIPT = 'start.js';

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>orchestrator API</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
  <link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/swagger-ui-standalone-preset.js"></script>
  <script src="/docs/${START_SCRIPT}"></script>
</body>
</html>
`;

const START = `window.ui = SwaggerUIBundle({
  url: '/openapi.json',
  dom_id: '#swagger-ui',
  deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
  layout: 'StandaloneLayout',
  persistAuthorization: false,
});
`;

// Swagger UI sets inline style attributes and shows its logos as data: URIs; scripts come only from us.
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

function swaggerUiDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
}

function secured(ctx: Koa.Context, type: string, body: string | Buffer, maxAgeSeconds: number): void {
  ctx.set('Content-Security-Policy', CSP);
  ctx.set('Cache-Control', maxAgeSeconds > 0 ? `public, max-age=${maxAgeSeconds}` : 'no-cache');
  ctx.type = type;
  ctx.body = body;
}

/** GET /openapi.json and the interactive docs at /docs. Public: documents carry no tenant data. */
export function docsRoutes(deps: { document: () => unknown }) {
  const router = new Router();
  const dir = swaggerUiDir();
  const assets = new Map<string, Promise<Buffer>>();
  let documentJson: string | undefined;

  router.get('/openapi.json', (ctx) => {
    documentJson ??= JSON.stringify(deps.document());
    ctx.set('Cache-Control', 'no-cache');
    ctx.type = 'application/json';
    ctx.body = documentJson;
  });

  router.get('/docs', (ctx) => secured(ctx, 'text/html; charset=utf-8', PAGE, 0));

  router.get('/docs/:file', async (ctx) => {
    const file = ctx.params.file!;
    if (file === START_SCRIPT) return secured(ctx, 'text/javascript; charset=utf-8', START, 0);
    const type = Object.hasOwn(ASSETS, file) ? ASSETS[file] : undefined;
    if (!type) throw new Problem(404, 'NotFound', 'Not Found', `no resource at ${ctx.path}`);
    let bytes = assets.get(file);
    if (!bytes) {
      bytes = readFile(path.join(dir, file));
      assets.set(file, bytes);
      bytes.catch(() => assets.delete(file));
    }
    secured(ctx, type, await bytes, 86_400);
  });

  return router;
}

export const docsOperations: ApiOperation[] = [
  { method: 'get', path: '/openapi.json', operationId: 'getOpenApiDocument', summary: 'This API as an OpenAPI 3.1 document', tags: ['docs'], auth: 'none', responses: { 200: { description: 'the document', schema: z.record(z.string(), z.unknown()) } } },
  { method: 'get', path: '/docs', operationId: 'getDocs', summary: 'Interactive API docs (Swagger UI)', tags: ['docs'], auth: 'none', responses: { 200: { description: 'the docs page', contentType: 'text/html', schema: z.string() } } },
  {
    method: 'get', path: '/docs/{file}', operationId: 'getDocsAsset', summary: 'A script, style sheet or icon of the docs page', tags: ['docs'], auth: 'none',
    params: z.object({ file: z.enum([...Object.keys(ASSETS), START_SCRIPT]) }),
    responses: { 200: { description: 'the file', contentType: '*/*' } }, problems: [404],
  },
];

// The bare side of the GET /v1/tasks/:id row: a Koa process with one route answering a fixed JSON body (BARE_BODY),
// so the ratio shows what authentication, the database read and the domain mapping cost per request.
import http from 'node:http';
import Router from '@koa/router';
import Koa from 'koa';

const body = JSON.parse(process.env.BARE_BODY ?? '{}') as unknown;
const app = new Koa();
const router = new Router();
router.get('/v1/tasks/:id', (ctx) => {
  ctx.body = body;
});
app.use(router.routes());
const server = http.createServer(app.callback());
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  if (address && typeof address === 'object') process.stdout.write(`http://127.0.0.1:${address.port}\n`);
});
process.once('SIGTERM', () => server.close(() => process.exit(0)));

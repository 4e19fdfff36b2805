import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { BlobNotFoundError } from '../../src/core/blob-store.ts';
import { redisResultCache } from '../../src/core/result-cache.ts';
import { createResultService, ResultGoneError } from '../../src/core/results.ts';
import { createBlobStore } from '../../src/integrations/blob-store-factory.ts';
import { createFileBlobStore } from '../../src/integrations/file-blob-store.ts';
import { createTestDb, insertTask, REDIS_TEST_URL, type TestDb } from '../support/test-db.ts';


async function readAll(body: Buffer | Readable): Promise<Buffer> {
  if (Buffer.isBuffer(body)) return body;
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const INLINE_MAX = 64;

describe('result service', () => {
  let t: TestDb;
  let redis: Redis;
  let dir: string;
  const prefix = `test:results:${randomBytes(4).toString('hex')}:`;
  let results: ReturnType<typeof createResultService>;

  before(async () => {
    t = await createTestDb('results');
    redis = new Redis(REDIS_TEST_URL);
    dir = await mkdtemp(path.join(os.tmpdir(), 'orch-blobs-'));
    results = createResultService({ db: t.db, cache: redisResultCache(redis), blobs: createFileBlobStore(dir), inlineMaxBytes: INLINE_MAX, keyPrefix: prefix, cacheTtlSeconds: 60 });
  });

  after(async () => {
    const keys = await redis.keys(`${prefix}*`);
    if (keys.length) await redis.del(...keys);
    await redis.quit();
    await t.drop();
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps a result of exactly inlineMaxBytes inline and gives the same bytes back', async () => {
    const taskId = await insertTask(t.db);
    const data = randomBytes(INLINE_MAX);
    const ref = await results.save(taskId, data, 'application/octet-stream');
    assert.deepEqual(ref, { storage: 'inline', size: INLINE_MAX, sha256: sha(data), mediaType: 'application/octet-stream' });

    const row = await t.db.selectFrom('results').selectAll().where('task_id', '=', taskId).executeTakeFirstOrThrow();
    assert.ok(row.content && row.content.equals(data));
    assert.equal(row.location, null);
    assert.equal(Number(row.size), INLINE_MAX);
    assert.equal(row.sha256, sha(data));

    const opened = await results.open(taskId);
    assert.ok(opened);
    assert.ok((await readAll(opened.body)).equals(data));
    assert.equal(opened.sha256, sha(data));
    assert.equal(opened.size, INLINE_MAX);
  });

  it('stages one byte more, then publishes it as a pointer in the blob store', async () => {
    const taskId = await insertTask(t.db);
    const data = randomBytes(INLINE_MAX + 1);
    const staged = await results.save(taskId, data, 'application/octet-stream');
    assert.equal(staged.storage, 'staged');
    assert.equal(await results.describe(taskId), undefined, 'nothing is visible before publish');
    const stagedRow = await t.db.selectFrom('result_staging').select(['size', 'sha256']).where('task_id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(Number(stagedRow.size), INLINE_MAX + 1);

    const ref = await results.publish(taskId);
    assert.equal(ref?.storage, 'pointer');
    assert.equal(ref?.size, INLINE_MAX + 1);
    assert.equal(ref?.sha256, sha(data));
    assert.deepEqual(await t.db.selectFrom('result_staging').select('task_id').where('task_id', '=', taskId).execute(), []);
    assert.deepEqual(await results.publish(taskId), ref, 'publishing again is harmless');

    const row = await t.db.selectFrom('results').selectAll().where('task_id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(row.content, null);
    // The stored location names the object, never where the server keeps it.
    assert.equal(row.location, `file-store:tasks/${taskId}/result.bin`);
    assert.deepEqual(await readdir(path.join(dir, 'tasks', taskId)), ['result.bin']);

    const view = await results.describe(taskId);
    assert.equal(JSON.stringify(view).includes(dir), false);
    assert.deepEqual(view, {
      storage: 'pointer',
      pointer: { type: 'pointer', location: `file-store:tasks/${taskId}/result.bin`, size: INLINE_MAX + 1, sha256: sha(data), mediaType: 'application/octet-stream' },
    });
    const opened = await results.open(taskId);
    assert.ok(opened && !Buffer.isBuffer(opened.body));
    const back = await readAll(opened.body);
    assert.ok(back.equals(data));
    assert.equal(sha(back), opened.sha256);
    assert.equal(await redis.exists(`${prefix}result:${taskId}`), 0, 'pointers are not cached');
  });

  it('describes JSON as parsed values and text as strings', async () => {
    const jsonTask = await insertTask(t.db);
    await results.save(jsonTask, Buffer.from('{"a":[1,2],"b":"é"}'), 'application/json; charset=utf-8');
    const view = await results.describe(jsonTask);
    assert.equal(view?.storage, 'inline');
    assert.deepEqual(view.storage === 'inline' && view.value, { a: [1, 2], b: 'é' });

    const textTask = await insertTask(t.db);
    await results.save(textTask, Buffer.from('héllo'), 'text/plain');
    const text = await results.describe(textTask);
    assert.equal(text?.storage === 'inline' && text.value, 'héllo');
    assert.equal(text?.storage === 'inline' && text.size, Buffer.byteLength('héllo'));
  });

  it('is idempotent per task: a second save replaces the first and leaves one row', async () => {
    const taskId = await insertTask(t.db);
    await results.save(taskId, Buffer.from('first'), 'text/plain');
    const big = randomBytes(INLINE_MAX * 3);
    await results.save(taskId, big, 'application/octet-stream');
    const small = Buffer.from('{"final":true}');
    const ref = await results.save(taskId, small, 'application/json');

    const rows = await t.db.selectFrom('results').selectAll().where('task_id', '=', taskId).execute();
    assert.equal(rows.length, 1);
    assert.ok(rows[0]!.content?.equals(small));
    assert.equal(rows[0]!.location, null);
    assert.equal(rows[0]!.sha256, ref.sha256);
    const view = await results.describe(taskId);
    assert.deepEqual(view?.storage === 'inline' && view.value, { final: true });
  });

  it('fills the Redis cache on a miss and on publish, and clears it when the result is replaced', async () => {
    const taskId = await insertTask(t.db);
    const key = `${prefix}result:${taskId}`;
    const data = Buffer.from('{"n":1}');
    await results.save(taskId, data, 'application/json');
    assert.equal(await redis.exists(key), 0);

    await results.describe(taskId);
    const cached = await redis.hgetallBuffer(key);
    assert.ok(cached.content?.equals(data));
    assert.equal(cached.sha256?.toString(), sha(data));
    assert.equal(cached.media_type?.toString(), 'application/json');
    const ttl = await redis.ttl(key);
    assert.ok(ttl > 0 && ttl <= 60, `ttl ${ttl}`);

    const replacement = Buffer.from('{"n":2}');
    await results.save(taskId, replacement, 'application/json');
    assert.equal(await redis.exists(key), 0, 'a replaced result must not be served from the cache');

    await results.publish(taskId);
    assert.ok((await redis.hgetallBuffer(key)).content?.equals(replacement));
    const opened = await results.open(taskId);
    assert.ok(opened && Buffer.isBuffer(opened.body) && opened.body.equals(replacement));
  });

  it('returns undefined for a task without a result', async () => {
    const taskId = await insertTask(t.db);
    assert.equal(await results.describe(taskId), undefined);
    assert.equal(await results.open(taskId), undefined);
    await results.publish(taskId);
    assert.equal(await redis.exists(`${prefix}result:${taskId}`), 0);
  });

  it('raises ResultGoneError when the blob behind a pointer is missing', async () => {
    const taskId = await insertTask(t.db);
    await results.save(taskId, randomBytes(INLINE_MAX * 2), 'application/json');
    await results.publish(taskId);
    const row = await t.db.selectFrom('results').select('location').where('task_id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(row.location, `file-store:tasks/${taskId}/result.json`);
    await unlink(path.join(dir, 'tasks', taskId, 'result.json'));
    await assert.rejects(results.open(taskId), (err: unknown) => {
      assert.ok(err instanceof ResultGoneError);
      assert.equal(err.code, 'ResultGone');
      assert.ok(err.cause instanceof BlobNotFoundError);
      return true;
    });
  });
});

describe('file blob store', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'orch-fbs-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('keeps keys inside its directory and leaves no temp files', async () => {
    const store = createFileBlobStore(dir);
    const { location } = await store.put('../../etc/../x/./y', Buffer.from('abc'), 'text/plain');
    assert.equal(location, 'file-store:etc/x/y');
    assert.deepEqual(await readdir(path.join(dir, 'etc', 'x')), ['y']);
    const { stream, size } = await store.open(location);
    assert.equal(size, 3);
    assert.equal((await readAll(stream)).toString(), 'abc');
  });

  it('still opens absolute file:// locations of older rows inside its directory, and shows them without the path', async () => {
    const store = createFileBlobStore(dir);
    await store.put('old/result.txt', Buffer.from('from before'), 'text/plain');
    const legacy = pathToFileURL(path.join(dir, 'old', 'result.txt')).href;
    assert.equal((await readAll((await store.open(legacy)).stream)).toString(), 'from before');
    assert.equal(store.publicLocation(legacy), 'file-store:old/result.txt');
    assert.equal(store.publicLocation('file-store:old/result.txt'), 'file-store:old/result.txt');
    assert.equal(store.publicLocation('file:///etc/hostname'), 'file-store:');
  });

  it('refuses locations outside its directory and missing files', async () => {
    const store = createFileBlobStore(dir);
    for (const outside of ['file-store:../outside', 'file-store:a/../../outside', 'file-store:/etc/hostname', 'file-store:', 'file-store:nope', 'file-store:x\0y']) {
      await assert.rejects(store.open(outside), BlobNotFoundError, outside);
    }
    await assert.rejects(store.open('file:///etc/hostname'), BlobNotFoundError);
    await assert.rejects(store.open(`file://${dir}/../outside`), BlobNotFoundError);
    await assert.rejects(store.open(`file://${dir}/nope`), BlobNotFoundError);
    await assert.rejects(store.open('https://example.com/x'), BlobNotFoundError);
  });

  it('is chosen from RESULT_STORE URIs', async () => {
    const relative = createBlobStore('file://./sub', { baseDir: dir });
    assert.equal((await relative.put('k', Buffer.from('1'), 'text/plain')).location, 'file-store:k');
    assert.deepEqual(await readdir(path.join(dir, 'sub')), ['k']);
    const absolute = createBlobStore(`file://${dir}/abs`, { baseDir: '/nonexistent' });
    assert.equal((await absolute.put('k', Buffer.from('1'), 'text/plain')).location, 'file-store:k');
    assert.deepEqual(await readdir(path.join(dir, 'abs')), ['k']);
    assert.equal(createBlobStore('hf://datasets/acme/results', { baseDir: dir, hfEndpoint: 'http://127.0.0.1:9' }).scheme, 'hf');
    assert.throws(() => createBlobStore('hf://datasets/acme', { baseDir: dir }), /hf:\/\/datasets/);
    assert.throws(() => createBlobStore('s3://bucket', { baseDir: dir }), /not supported/);
  });
});

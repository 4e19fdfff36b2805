import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { createRepo, downloadFile, repoExists, uploadFile, whoAmI } from '@huggingface/hub';
import { BlobNotFoundError, type BlobStore } from '../../src/core/blob-store.ts';
import { createBlobStore } from '../../src/integrations/blob-store-factory.ts';
import { createDatasetBlobStore, parseHfLocation } from '../../src/integrations/huggingface/dataset-blob-store.ts';
import { startLocalHub, type LocalHub } from '../support/local-hub/index.ts';

const ALICE = 'hf_alice_0123456789abcdefSECRET';
const BOB = 'hf_bob_0123456789abcdefSECRET';
const sha256 = (b: Buffer | Uint8Array) => createHash('sha256').update(b).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}

async function readBlob(store: BlobStore, location: string): Promise<{ bytes: Buffer; size: number }> {
  const { stream, size } = await store.open(location);
  return { bytes: await readAll(stream), size };
}

describe('local Hub: datasets over the real @huggingface/hub client', function () {
  let hub: LocalHub;
  let counter = 0;
  const freshRepo = () => `alice/ds-${Date.now().toString(36)}-${++counter}`;

  beforeEach(async () => {
    hub = await startLocalHub({ tokens: { [ALICE]: 'alice', [BOB]: 'bob' } });
  });
  afterEach(async () => {
    await hub.stop();
  });

  it('whoAmI names the token owner and rejects unknown tokens with 401', async () => {
    const me = await whoAmI({ accessToken: ALICE, hubUrl: hub.url });
    assert.equal(me.name, 'alice');
    assert.equal(me.type, 'user');
    await assert.rejects(whoAmI({ accessToken: 'hf_nobody_knows_me', hubUrl: hub.url }), (err: { statusCode?: number }) => err.statusCode === 401);
  });

  it('creates a private dataset that only its owner can see; a second create is a 409', async () => {
    const name = freshRepo();
    const repo = { type: 'dataset' as const, name };
    await createRepo({ repo, private: true, accessToken: ALICE, hubUrl: hub.url });
    const state = hub.datasets.repo(name);
    assert.ok(state);
    assert.equal(state.private, true);
    assert.equal(state.commits.length, 1);
    assert.match(state.commits[0]!, /^[0-9a-f]{40}$/);

    assert.equal(await repoExists({ repo, hubUrl: hub.url, accessToken: ALICE }), true);
    assert.equal(await repoExists({ repo, hubUrl: hub.url }), false);
    assert.equal(await repoExists({ repo, hubUrl: hub.url, accessToken: BOB }), false);

    await uploadFile({ repo, file: { path: 'a.txt', content: new Blob(['hello']) }, accessToken: ALICE, hubUrl: hub.url });
    await assert.rejects(downloadFile({ repo, path: 'a.txt', hubUrl: hub.url }), (err: { statusCode?: number }) => err.statusCode === 404);
    const anon = await fetch(`${hub.url}/datasets/${name}/resolve/main/a.txt`);
    assert.equal(anon.status, 404);
    assert.equal(anon.headers.get('x-error-code'), 'RepoNotFound');
    await assert.rejects(
      uploadFile({ repo, file: { path: 'b.txt', content: new Blob(['x']) }, accessToken: BOB, hubUrl: hub.url }),
      (err: { statusCode?: number }) => err.statusCode === 404,
    );
    await assert.rejects(uploadFile({ repo, file: { path: 'b.txt', content: new Blob(['x']) }, hubUrl: hub.url }), (err: { statusCode?: number }) => err.statusCode === 401);

    await assert.rejects(createRepo({ repo, private: true, accessToken: ALICE, hubUrl: hub.url }), (err: { statusCode?: number }) => err.statusCode === 409);
  });

  it('stores a small file as a regular git file and serves it back, with ETag, Range and 404 codes', async () => {
    const name = freshRepo();
    const repo = { type: 'dataset' as const, name };
    await createRepo({ repo, private: true, accessToken: ALICE, hubUrl: hub.url });
    const content = randomBytes(4096);
    const out = await uploadFile({ repo, file: { path: 'dir/small.bin', content: new Blob([content]) }, accessToken: ALICE, hubUrl: hub.url });
    assert.ok(out);
    const state = hub.datasets.repo(name)!;
    assert.equal(out.commit.oid, state.commits.at(-1));
    assert.deepEqual(state.files['dir/small.bin'], { size: 4096, sha256: sha256(content), lfs: false });
    assert.ok(!hub.requests().some((r) => r.method === 'PUT'), 'a regular file needs no LFS upload');

    const blob = await downloadFile({ repo, path: 'dir/small.bin', accessToken: ALICE, hubUrl: hub.url });
    assert.ok(blob);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(content));

    const auth = { Authorization: `Bearer ${ALICE}` };
    const ranged = await fetch(`${hub.url}/datasets/${name}/resolve/${out.commit.oid}/dir/small.bin`, { headers: { ...auth, Range: 'bytes=100-199' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), 'bytes 100-199/4096');
    assert.equal(ranged.headers.get('content-length'), '100');
    assert.equal(ranged.headers.get('accept-ranges'), 'bytes');
    assert.equal(ranged.headers.get('x-repo-commit'), out.commit.oid);
    const etag = ranged.headers.get('etag');
    assert.match(etag ?? '', /^"[0-9a-f]{40}"$/);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(content.subarray(100, 200)));

    const head = await fetch(`${hub.url}/datasets/${name}/resolve/main/dir/small.bin`, { method: 'HEAD', headers: auth });
    assert.equal(head.status, 200);
    assert.equal(head.headers.get('content-length'), '4096');
    assert.equal(head.headers.get('etag'), etag);

    const missing = await fetch(`${hub.url}/datasets/${name}/resolve/main/nope.bin`, { headers: auth });
    assert.equal(missing.status, 404);
    assert.equal(missing.headers.get('x-error-code'), 'EntryNotFound');
    const badRev = await fetch(`${hub.url}/datasets/${name}/resolve/${'0'.repeat(40)}/dir/small.bin`, { headers: auth });
    assert.equal(badRev.status, 404);
    assert.equal(badRev.headers.get('x-error-code'), 'RevisionNotFound');
    assert.equal(await downloadFile({ repo, path: 'nope.bin', accessToken: ALICE, hubUrl: hub.url }), null);
  });

  it('sends files at or above the LFS threshold through the LFS batch API and a basic PUT', async () => {
    hub.datasets.lfsThresholdBytes = 64 * 1024;
    const name = freshRepo();
    const repo = { type: 'dataset' as const, name };
    await createRepo({ repo, private: true, accessToken: ALICE, hubUrl: hub.url });
    const content = randomBytes(200 * 1024);
    const out = await uploadFile({ repo, file: { path: 'big.bin', content: new Blob([content]) }, accessToken: ALICE, hubUrl: hub.url });
    assert.ok(out);
    assert.deepEqual(hub.datasets.repo(name)!.files['big.bin'], { size: content.length, sha256: sha256(content), lfs: true });
    const reqs = hub.requests();
    assert.ok(reqs.some((r) => r.method === 'POST' && r.path === `/datasets/${name}.git/info/lfs/objects/batch`), 'LFS batch call');
    const puts = reqs.filter((r) => r.method === 'PUT');
    assert.equal(puts.length, 1, 'one basic LFS PUT');
    assert.ok(puts[0]!.path.endsWith(`/${sha256(content)}`));

    const blob = await downloadFile({ repo, path: 'big.bin', revision: out.commit.oid, accessToken: ALICE, hubUrl: hub.url });
    assert.ok(blob);
    assert.equal(blob.size, content.length);
    assert.ok(Buffer.from(await blob.arrayBuffer()).equals(content));

    // The resolve URL redirects to storage; Range still works end to end.
    const ranged = await fetch(`${hub.url}/datasets/${name}/resolve/main/big.bin`, { headers: { Authorization: `Bearer ${ALICE}`, Range: 'bytes=-10' } });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers.get('content-range'), `bytes ${content.length - 10}-${content.length - 1}/${content.length}`);
    assert.equal(ranged.headers.get('etag'), `"${sha256(content)}"`);
    assert.ok(Buffer.from(await ranged.arrayBuffer()).equals(content.subarray(content.length - 10)));

    // The same bytes again: the hub already has the object, so no second PUT.
    await uploadFile({ repo, file: { path: 'copy.bin', content: new Blob([content]) }, accessToken: ALICE, hubUrl: hub.url });
    assert.equal(hub.requests().filter((r) => r.method === 'PUT').length, 1);
    assert.equal(hub.datasets.repo(name)!.files['copy.bin']!.lfs, true);
  });

  describe('dataset blob store', () => {
    it('creates the repo (private), pins each put to its commit, and keeps old locations on old bytes', async () => {
      const name = freshRepo();
      const store = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE });
      assert.equal(store.scheme, 'hf');
      const first = Buffer.from('first version of the result '.repeat(1000));
      const { location: loc1 } = await store.put('tasks/t1/result.json', first, 'application/json');
      const state1 = hub.datasets.repo(name);
      assert.ok(state1, 'repo created on first put');
      assert.equal(state1.private, true);
      assert.equal(loc1, `hf://datasets/${name}@${state1.commits.at(-1)}/tasks/t1/result.json`);
      assert.deepEqual(parseHfLocation(loc1), { repo: name, revision: state1.commits.at(-1), path: 'tasks/t1/result.json' });

      const second = Buffer.from('second, different and longer version '.repeat(1500));
      const { location: loc2 } = await store.put('tasks/t1/result.json', second, 'application/json');
      assert.notEqual(loc2, loc1);
      assert.equal(hub.datasets.repo(name)!.commits.length, state1.commits.length + 1);

      const r1 = await readBlob(store, loc1);
      assert.equal(r1.size, first.length);
      assert.ok(r1.bytes.equals(first), 'old pointer still reads the old bytes');
      const r2 = await readBlob(store, loc2);
      assert.equal(r2.size, second.length);
      assert.ok(r2.bytes.equals(second));

      // Reads go through the Hub with the token, never anonymously (the repo is private).
      const resolves = hub.requests().filter((r) => r.path.includes('/resolve/'));
      assert.ok(resolves.length >= 2 && resolves.every((r) => r.authorization === `Bearer ${ALICE}`));
    });

    it('stores large results through LFS and reads them back exactly', async () => {
      hub.datasets.lfsThresholdBytes = 1024 * 1024;
      const name = freshRepo();
      const store = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE });
      const data = randomBytes(3 * 1024 * 1024 + 17);
      const { location } = await store.put('tasks/big/result.bin', data, 'application/octet-stream');
      assert.equal(hub.datasets.repo(name)!.files['tasks/big/result.bin']!.lfs, true);
      const back = await readBlob(store, location);
      assert.equal(back.size, data.length);
      assert.equal(sha256(back.bytes), sha256(data));
    });

    it('answers BlobNotFoundError for purged objects, unknown revisions and foreign locations', async () => {
      const name = freshRepo();
      const store = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE });
      const { location } = await store.put('tasks/t2/result.txt', Buffer.from('soon gone'), 'text/plain');
      const { location: other } = await store.put('tasks/t3/result.txt', Buffer.from('stays'), 'text/plain');
      hub.datasets.deleteFile(name, 'tasks/t2/result.txt');
      await assert.rejects(store.open(location), BlobNotFoundError);
      assert.ok((await readBlob(store, other)).bytes.equals(Buffer.from('stays')));

      const loc = parseHfLocation(location)!;
      await assert.rejects(store.open(`hf://datasets/${name}@${'a'.repeat(40)}/${loc.path}`), BlobNotFoundError);
      await assert.rejects(store.open(`hf://datasets/alice/never-created@${'a'.repeat(40)}/x`), BlobNotFoundError);
      await assert.rejects(store.open('file:///tmp/x'), BlobNotFoundError);
      await assert.rejects(store.open('hf://datasets/alice/x/no-revision'), BlobNotFoundError);
      await assert.rejects(store.open(`hf://datasets/${name}@${loc.revision}/../escape`), BlobNotFoundError);
    });

    it('throws on Hub failures so the retry policy can retry, and never leaks the token', async () => {
      const name = freshRepo();
      const store = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE });
      await store.put('warmup', Buffer.from('x'), 'text/plain'); // repo exists from here on
      hub.datasets.failNextUploads(2);
      const data = Buffer.from('retried payload');
      for (let i = 0; i < 2; i++) {
        await assert.rejects(store.put('tasks/t4/result.txt', data, 'text/plain'), (err: Error & { permanent?: boolean }) => {
          assert.match(err.message, /tasks\/t4\/result\.txt/);
          assert.match(err.message, /500/);
          assert.ok(!err.message.includes(ALICE), 'token must not appear');
          assert.ok(!String(err.stack).includes(ALICE), 'token must not appear in the stack either');
          assert.notEqual(err.permanent, true);
          return true;
        });
      }
      const { location } = await store.put('tasks/t4/result.txt', data, 'text/plain');
      assert.ok((await readBlob(store, location)).bytes.equals(data));
    });

    it('retries an LFS upload whose PUT failed', async () => {
      hub.datasets.lfsThresholdBytes = 1024;
      const name = freshRepo();
      const store = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE });
      await store.put('warmup', Buffer.from('x'), 'text/plain');
      hub.datasets.failNextUploads(1);
      const data = randomBytes(8192);
      await assert.rejects(store.put('tasks/t5/result.bin', data, 'application/octet-stream'), /LFS|500/);
      assert.equal(hub.datasets.repo(name)!.files['tasks/t5/result.bin'], undefined);
      const { location } = await store.put('tasks/t5/result.bin', data, 'application/octet-stream');
      assert.ok((await readBlob(store, location)).bytes.equals(data));
    });

    it('marks credential and rights failures permanent, without the token in the message', async () => {
      const wrong = 'hf_wrong_token_SECRETSECRET';
      const bad = createDatasetBlobStore({ repo: freshRepo(), hubUrl: hub.url, accessToken: wrong });
      await assert.rejects(bad.put('k', Buffer.from('x'), 'text/plain'), (err: Error & { permanent?: boolean }) => {
        assert.equal(err.permanent, true);
        assert.ok(!err.message.includes(wrong));
        return true;
      });

      const name = freshRepo();
      await createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: ALICE }).put('k', Buffer.from('x'), 'text/plain');
      const intruder = createDatasetBlobStore({ repo: name, hubUrl: hub.url, accessToken: BOB });
      await assert.rejects(intruder.put('k', Buffer.from('y'), 'text/plain'), (err: Error & { permanent?: boolean }) => {
        assert.equal(err.permanent, true);
        assert.ok(!err.message.includes(BOB));
        return true;
      });
      assert.equal(hub.datasets.repo(name)!.commits.length, 2, 'nothing written by the intruder');

      const malformed = createDatasetBlobStore({ repo: freshRepo(), hubUrl: hub.url, accessToken: 'not-an-hf-token' });
      await assert.rejects(malformed.put('k', Buffer.from('x'), 'text/plain'), (err: Error & { permanent?: boolean }) => err.permanent === true && !err.message.includes('not-an-hf-token'));
    });

    it('is what createBlobStore builds for hf://datasets/OWNER/NAME', async () => {
      const name = freshRepo();
      const store = createBlobStore(`hf://datasets/${name}`, { baseDir: '/tmp', hfEndpoint: hub.url, hfToken: ALICE });
      assert.equal(store.scheme, 'hf');
      const { location } = await store.put('tasks/t6/result.json', Buffer.from('{"ok":true}'), 'application/json');
      assert.ok(location.startsWith(`hf://datasets/${name}@`));
      assert.ok((await readBlob(store, location)).bytes.equals(Buffer.from('{"ok":true}')));
      assert.equal(createBlobStore('file://./data', { baseDir: '/tmp' }).scheme, 'file-store');
      assert.throws(() => createBlobStore('hf://datasets/only-owner', { baseDir: '/tmp' }), /OWNER\/NAME/);
      assert.throws(() => createBlobStore('hf://models/a/b', { baseDir: '/tmp' }), /not supported/);
    });
  });
});

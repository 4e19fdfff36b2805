import { createHash, createHmac, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { HubContext, HubModule, HubRoute } from './index.ts';

// Dataset repositories for the local Hub: an in-memory, git-like model (commits with 40-hex oids, each one a
// full file map; `main` is the latest) behind the Hub's real HTTP routes as @huggingface/hub 2.x calls them:
//
//   GET  /api/whoami-v2
//   POST /api/repos/create                                  {name, organization, type: 'dataset', visibility|private}
//   GET  /api/datasets/{owner}/{name}[/revision/{rev}]      repo info (repoExists, datasetInfo)
//   POST /api/datasets/{owner}/{name}/preupload/{rev}       → uploadMode 'regular' | 'lfs' per file
//   POST /datasets/{owner}/{name}.git/info/lfs/objects/batch → transfer 'basic' with signed PUT URLs (never 'xet')
//   PUT  /_lfs/upload/datasets/{owner}/{name}/{oid}?...     the storage URL the batch hands out (S3 on the Hub)
//   POST /api/datasets/{owner}/{name}/commit/{rev}          NDJSON: header, file (base64), lfsFile, deletedFile, deletedFolder
//   GET|HEAD /datasets/{owner}/{name}/resolve/{rev}/{path}  regular files served directly; LFS files answer 302 to
//   GET  /_lfs/cdn/datasets/{owner}/{name}/{oid}?...        a signed CDN URL, like the Hub does
//
// Access: a private repo is visible only to its owner (everyone else gets 404 RepoNotFound, as the brief for this
// hub asks); writes need a known token (401), of the owner (403 on public repos, 404 on private ones).

export interface DatasetsControl {
  /** preupload answers "lfs" for files of at least this many bytes. Default 10 MiB, like the Hub. */
  lfsThresholdBytes: number;
  /**
   * The next n upload attempts fail with HTTP 500. An attempt is ONE commit POST or ONE LFS PUT (whichever
   * arrives); preupload and the LFS batch call are not counted. The body is read before failing.
   */
  failNextUploads(n: number): void;
  /** A snapshot of a repo ("owner/name") at `main`, or undefined if there is none. */
  repo(name: string): undefined | { private: boolean; commits: string[]; files: Record<string, { size: number; sha256: string; lfs: boolean }> };
  /** Purge a file: gone from every commit, and its LFS object removed when nothing else references it. */
  deleteFile(repo: string, path: string): void;
}

interface StoredFile {
  size: number;
  sha256: string;
  lfs: boolean;
  /** What the Hub puts in ETag: the git blob sha1 for regular files, the sha256 for LFS ones. */
  etag: string;
  content: Buffer;
}

interface Commit {
  oid: string;
  parent?: string;
  title: string;
  date: string;
  files: Map<string, StoredFile>;
}

interface Repo {
  id: string;
  owner: string;
  name: string;
  private: boolean;
  createdAt: string;
  commits: Commit[];
  /** LFS objects uploaded through the batch API, by sha256. */
  lfs: Map<string, Buffer>;
}

const NAME = '[A-Za-z0-9][A-Za-z0-9._-]*';
const DEFAULT_LFS_THRESHOLD = 10 * 1024 * 1024;
const URL_TTL_SECONDS = 3600;

const sha256Hex = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const gitBlobSha1 = (b: Buffer) => createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

function decodeSegments(raw: string): string | undefined {
  try {
    return raw.split('/').map(decodeURIComponent).join('/');
  } catch {
    return undefined;
  }
}

/** A repo-relative path the Hub would accept: no empty, `.` or `..` segments, no leading slash. */
function validPath(p: unknown): p is string {
  return typeof p === 'string' && p.length > 0 && p.length <= 1000 && !p.split('/').some((s) => s === '' || s === '.' || s === '..');
}

export function createDatasetsModule(ctx: HubContext): HubModule<DatasetsControl> {
  const repos = new Map<string, Repo>();
  const secret = randomBytes(32);
  let failUploads = 0;

  const control: DatasetsControl = {
    lfsThresholdBytes: DEFAULT_LFS_THRESHOLD,
    failNextUploads(n) {
      failUploads = Math.max(0, Math.floor(n));
    },
    repo(name) {
      const r = repos.get(name);
      if (!r) return undefined;
      const files: Record<string, { size: number; sha256: string; lfs: boolean }> = {};
      for (const [p, f] of head(r).files) files[p] = { size: f.size, sha256: f.sha256, lfs: f.lfs };
      return { private: r.private, commits: r.commits.map((c) => c.oid), files };
    },
    deleteFile(repoName, path) {
      const r = repos.get(repoName);
      if (!r) return;
      const oids = new Set<string>();
      for (const c of r.commits) {
        const f = c.files.get(path);
        if (f?.lfs) oids.add(f.sha256);
        c.files.delete(path);
      }
      for (const oid of oids) {
        const stillUsed = r.commits.some((c) => [...c.files.values()].some((f) => f.lfs && f.sha256 === oid));
        if (!stillUsed) r.lfs.delete(oid);
      }
    },
  };

  function head(r: Repo): Commit {
    return r.commits[r.commits.length - 1]!;
  }

  function newCommit(r: Repo | undefined, title: string, files: Map<string, StoredFile>): Commit {
    const parent = r ? head(r).oid : undefined;
    const h = createHash('sha1').update(`${parent ?? ''}\n${title}\n${Date.now()}\n`).update(randomBytes(16));
    for (const [p, f] of [...files].sort(([a], [b]) => (a < b ? -1 : 1))) h.update(`${p}\0${f.etag}\n`);
    return { oid: h.digest('hex'), ...(parent ? { parent } : {}), title, date: new Date().toISOString(), files };
  }

  function storedRegular(content: Buffer): StoredFile {
    return { size: content.length, sha256: sha256Hex(content), lfs: false, etag: gitBlobSha1(content), content };
  }

  function sign(parts: string): string {
    return createHmac('sha256', secret).update(parts).digest('hex');
  }

  function signedUrl(kind: 'upload' | 'cdn', r: Repo, oid: string, size: number): string {
    const exp = Math.floor(Date.now() / 1000) + URL_TTL_SECONDS;
    const sig = sign(`${kind}:${r.id}:${oid}:${size}:${exp}`);
    return `${ctx.baseUrl()}/_lfs/${kind}/datasets/${r.id}/${oid}?size=${size}&exp=${exp}&sig=${sig}`;
  }

  function checkSigned(kind: 'upload' | 'cdn', r: Repo, oid: string, url: URL): number | undefined {
    const size = Number(url.searchParams.get('size'));
    const exp = Number(url.searchParams.get('exp'));
    const sig = url.searchParams.get('sig') ?? '';
    if (!Number.isSafeInteger(size) || !Number.isSafeInteger(exp) || exp < Date.now() / 1000) return undefined;
    return sig === sign(`${kind}:${r.id}:${oid}:${size}:${exp}`) ? size : undefined;
  }

  function repoNotFound(res: ServerResponse): void {
    ctx.json(
      res,
      404,
      { error: 'Repository not found' },
      { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' },
    );
  }

  /** The repo if `user` may read it; otherwise answers 404 and returns undefined. */
  function readable(res: ServerResponse, id: string, user: string | undefined): Repo | undefined {
    const r = repos.get(id);
    if (!r || (r.private && r.owner !== user)) {
      repoNotFound(res);
      return undefined;
    }
    return r;
  }

  /** The repo if `user` may write to it; otherwise answers 401 / 403 / 404 and returns undefined. */
  function writable(res: ServerResponse, id: string, user: string | undefined): Repo | undefined {
    if (!user) {
      ctx.error(res, 401, 'Invalid credentials in Authorization header');
      return undefined;
    }
    const r = readable(res, id, user);
    if (!r) return undefined;
    if (r.owner !== user) {
      ctx.error(res, 403, `You don't have the rights to write to ${r.id}`);
      return undefined;
    }
    return r;
  }

  /** Only the `main` branch exists for writes; reads also take a full commit oid of this repo. */
  function commitAt(r: Repo, rev: string): Commit | undefined {
    if (rev === 'main') return head(r);
    if (/^[0-9a-f]{40}$/.test(rev)) return r.commits.find((c) => c.oid === rev);
    return undefined;
  }

  function revisionNotFound(res: ServerResponse, rev: string): void {
    const message = `Invalid rev id: ${rev}`;
    ctx.json(res, 404, { error: message }, { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': message });
  }

  function takeUploadFailure(res: ServerResponse): boolean {
    if (failUploads <= 0) return false;
    failUploads -= 1;
    ctx.error(res, 500, 'Internal Error - We\'re working hard to fix this as soon as possible!');
    return true;
  }

  async function readJson(req: IncomingMessage, res: ServerResponse, limit = 16 * 1024 * 1024): Promise<Record<string, unknown> | undefined> {
    const body = await ctx.readBody(req, limit);
    try {
      const v: unknown = JSON.parse(body.toString('utf8'));
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
    } catch {
      // answered below
    }
    ctx.error(res, 400, 'Invalid JSON body');
    return undefined;
  }

  function repoInfo(r: Repo, c: Commit): Record<string, unknown> {
    return {
      _id: createHash('sha1').update(r.id).digest('hex').slice(0, 24),
      id: r.id,
      author: r.owner,
      sha: c.oid,
      lastModified: c.date,
      createdAt: r.createdAt,
      private: r.private,
      gated: false,
      disabled: false,
      downloads: 0,
      likes: 0,
      tags: [],
      cardData: {},
      siblings: [...c.files.keys()].map((rfilename) => ({ rfilename })),
    };
  }

  /** Serves `content` with Range support (a single range) and the given identifying headers. */
  function serveBytes(req: IncomingMessage, res: ServerResponse, f: StoredFile, headers: Record<string, string>): void {
    const etag = `"${f.etag}"`;
    const base: Record<string, string> = {
      ...headers,
      ETag: etag,
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
    };
    const inm = req.headers['if-none-match'];
    if (inm && inm.split(',').map((s) => s.trim()).includes(etag)) {
      res.writeHead(304, base).end();
      return;
    }
    const range = req.headers.range;
    if (range && f.size > 0) {
      const m = /^bytes=(\d*)-(\d*)$/.exec(range.trim());
      let start = NaN;
      let end = NaN;
      if (m && (m[1] !== '' || m[2] !== '')) {
        if (m[1] === '') {
          start = Math.max(0, f.size - Number(m[2]));
          end = f.size - 1;
        } else {
          start = Number(m[1]);
          end = m[2] === '' ? f.size - 1 : Math.min(Number(m[2]), f.size - 1);
        }
      }
      if (!(start <= end) || start >= f.size) {
        res.writeHead(416, { ...base, 'Content-Range': `bytes */${f.size}`, 'Content-Length': '0' }).end();
        return;
      }
      const slice = f.content.subarray(start, end + 1);
      res.writeHead(206, { ...base, 'Content-Range': `bytes ${start}-${end}/${f.size}`, 'Content-Length': String(slice.length) });
      res.end(req.method === 'HEAD' ? undefined : slice);
      return;
    }
    res.writeHead(200, { ...base, 'Content-Length': String(f.size) });
    res.end(req.method === 'HEAD' ? undefined : f.content);
  }

  const repoPath = `(${NAME})/(${NAME})`;

  const routes: HubRoute[] = [
    {
      method: 'GET',
      pattern: /^\/api\/whoami-v2$/,
      async handle(req, res) {
        const user = ctx.userOf(req);
        if (!user) return ctx.error(res, 401, 'Invalid credentials in Authorization header');
        ctx.json(res, 200, {
          type: 'user',
          id: createHash('sha1').update(user).digest('hex').slice(0, 24),
          name: user,
          fullname: user,
          email: `${user}@example.invalid`,
          emailVerified: true,
          canPay: false,
          isPro: false,
          periodEnd: null,
          avatarUrl: `${ctx.baseUrl()}/avatars/${user}.svg`,
          orgs: [],
          auth: { type: 'access_token', accessToken: { displayName: 'local-hub', role: 'write', createdAt: new Date(0).toISOString() } },
        });
      },
    },
    {
      method: 'POST',
      pattern: /^\/api\/repos\/create$/,
      async handle(req, res) {
        const user = ctx.userOf(req);
        const body = await readJson(req, res);
        if (!body) return;
        if (!user) return ctx.error(res, 401, 'Invalid credentials in Authorization header');
        if (body.type !== 'dataset') return ctx.error(res, 400, `This local hub serves dataset repos here, not "${String(body.type ?? 'model')}"`);
        const name = body.name;
        const owner = body.organization ?? user;
        if (typeof name !== 'string' || !new RegExp(`^${NAME}$`).test(name) || typeof owner !== 'string' || !new RegExp(`^${NAME}$`).test(owner)) {
          return ctx.error(res, 400, 'Invalid repo name');
        }
        if (owner !== user) return ctx.error(res, 403, `You don't have the rights to create a dataset under the namespace "${owner}"`);
        const id = `${owner}/${name}`;
        const url = `${ctx.baseUrl()}/datasets/${id}`;
        if (repos.has(id)) return ctx.json(res, 409, { error: 'You already created this dataset repo', url }, { 'X-Error-Message': 'You already created this dataset repo' });
        const isPrivate = body.visibility !== undefined ? body.visibility !== 'public' : body.private === true;
        // Like the Hub: a new repo starts with one commit holding .gitattributes (plus any files sent along).
        const files = new Map<string, StoredFile>([['.gitattributes', storedRegular(Buffer.from('*.parquet filter=lfs diff=lfs merge=lfs -text\n'))]]);
        if (Array.isArray(body.files)) {
          for (const f of body.files as Array<{ path?: unknown; content?: unknown; encoding?: unknown }>) {
            if (!validPath(f.path) || typeof f.content !== 'string') return ctx.error(res, 400, 'Invalid file in repo creation');
            files.set(f.path, storedRegular(Buffer.from(f.content, f.encoding === 'base64' ? 'base64' : 'utf8')));
          }
        }
        const repo: Repo = { id, owner, name, private: isPrivate, createdAt: new Date().toISOString(), commits: [], lfs: new Map() };
        repo.commits.push(newCommit(undefined, 'initial commit', files));
        repos.set(id, repo);
        ctx.json(res, 200, { url, name: id, id: repoInfo(repo, head(repo))._id });
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/api/datasets/${repoPath}(?:/revision/([^/]+))?$`),
      async handle(req, res, m) {
        const r = readable(res, `${m[1]}/${m[2]}`, ctx.userOf(req));
        if (!r) return;
        const rev = m[3] ? decodeURIComponent(m[3]) : 'main';
        const c = commitAt(r, rev);
        if (!c) return revisionNotFound(res, rev);
        ctx.json(res, 200, repoInfo(r, c));
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/datasets/${repoPath}/preupload/([^/]+)$`),
      async handle(req, res, m) {
        const body = await readJson(req, res);
        if (!body) return;
        const r = writable(res, `${m[1]}/${m[2]}`, ctx.userOf(req));
        if (!r) return;
        const rev = decodeURIComponent(m[3]!);
        if (rev !== 'main') return revisionNotFound(res, rev);
        if (!Array.isArray(body.files)) return ctx.error(res, 400, 'files must be an array');
        const current = head(r).files;
        const files = [];
        for (const f of body.files as Array<{ path?: unknown; size?: unknown }>) {
          if (!validPath(f.path) || typeof f.size !== 'number') return ctx.error(res, 400, 'Invalid file in preupload');
          const existing = current.get(f.path);
          files.push({
            path: f.path,
            uploadMode: f.size >= control.lfsThresholdBytes ? 'lfs' : 'regular',
            shouldIgnore: false,
            ...(existing ? { oid: existing.etag } : {}),
          });
        }
        ctx.json(res, 200, { files, commitOid: head(r).oid });
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/datasets/${repoPath}\\.git/info/lfs/objects/batch$`),
      async handle(req, res, m) {
        const body = await readJson(req, res);
        if (!body) return;
        const r = writable(res, `${m[1]}/${m[2]}`, ctx.userOf(req));
        if (!r) return;
        if (body.operation !== 'upload') return ctx.error(res, 422, 'Only the upload operation is supported');
        const transfers = Array.isArray(body.transfers) ? body.transfers : ['basic'];
        if (!transfers.includes('basic')) return ctx.error(res, 422, 'No supported transfer adapter (this hub offers basic)');
        if (!Array.isArray(body.objects)) return ctx.error(res, 422, 'objects must be an array');
        const objects = (body.objects as Array<{ oid?: unknown; size?: unknown }>).map((o) => {
          const oid = String(o.oid);
          const size = Number(o.size);
          if (!/^[0-9a-f]{64}$/.test(oid) || !Number.isSafeInteger(size) || size < 0) {
            return { oid, size: o.size, error: { code: 422, message: 'Invalid oid or size' } };
          }
          const have = r.lfs.get(oid);
          if (have && have.length === size) return { oid, size, authenticated: true };
          const expiresAt = new Date(Date.now() + URL_TTL_SECONDS * 1000).toISOString();
          return { oid, size, authenticated: true, actions: { upload: { href: signedUrl('upload', r, oid, size), expires_at: expiresAt } } };
        });
        const text = JSON.stringify({ transfer: 'basic', objects, hash_algo: 'sha_256' });
        res.writeHead(200, { 'Content-Type': 'application/vnd.git-lfs+json', 'Content-Length': Buffer.byteLength(text) }).end(text);
      },
    },
    {
      method: 'PUT',
      pattern: new RegExp(`^/_lfs/upload/datasets/${repoPath}/([0-9a-f]{64})$`),
      async handle(req, res, m, url) {
        const data = await ctx.readBody(req);
        if (takeUploadFailure(res)) return;
        const r = repos.get(`${m[1]}/${m[2]}`);
        const oid = m[3]!;
        const size = r ? checkSigned('upload', r, oid, url) : undefined;
        if (!r || size === undefined) return ctx.error(res, 403, 'Request has expired or its signature does not match');
        if (data.length !== size) return ctx.error(res, 400, `Size mismatch: expected ${size} bytes, got ${data.length}`);
        if (sha256Hex(data) !== oid) return ctx.error(res, 400, 'Content does not match its sha256 oid');
        r.lfs.set(oid, data);
        res.writeHead(200, { ETag: `"${createHash('md5').update(data).digest('hex')}"`, 'Content-Length': '0' }).end();
      },
    },
    {
      method: 'POST',
      pattern: new RegExp(`^/api/datasets/${repoPath}/commit/([^/]+)$`),
      async handle(req, res, m, url) {
        const raw = await ctx.readBody(req);
        if (takeUploadFailure(res)) return;
        const r = writable(res, `${m[1]}/${m[2]}`, ctx.userOf(req));
        if (!r) return;
        const rev = decodeURIComponent(m[3]!);
        if (rev !== 'main') return revisionNotFound(res, rev);
        if (url.searchParams.get('create_pr')) return ctx.error(res, 400, 'Pull requests are not supported by this local hub');
        let lines: Array<{ key?: unknown; value?: Record<string, unknown> }>;
        try {
          lines = raw
            .toString('utf8')
            .split('\n')
            .filter((l) => l.trim() !== '')
            .map((l) => JSON.parse(l) as { key?: unknown; value?: Record<string, unknown> });
        } catch {
          return ctx.error(res, 400, 'Invalid NDJSON body');
        }
        const header = lines[0];
        if (!header || header.key !== 'header' || !header.value) return ctx.error(res, 400, 'The first line must be the commit header');
        const summary = typeof header.value.summary === 'string' && header.value.summary !== '' ? header.value.summary : 'Upload files';
        const parentCommit = header.value.parentCommit;
        if (typeof parentCommit === 'string' && parentCommit !== head(r).oid) {
          return ctx.error(res, 412, 'A commit has happened since. Please refresh and try again.');
        }
        const files = new Map(head(r).files);
        for (const line of lines.slice(1)) {
          const v = line.value ?? {};
          if (!validPath(v.path)) return ctx.error(res, 400, `Invalid path in ${String(line.key)} line`);
          if (line.key === 'file') {
            if (typeof v.content !== 'string') return ctx.error(res, 400, `No content for ${v.path}`);
            const content = Buffer.from(v.content, v.encoding === 'base64' ? 'base64' : 'utf8');
            if (content.length >= control.lfsThresholdBytes) {
              return ctx.error(res, 400, `Your push was rejected because ${v.path} is larger than ${control.lfsThresholdBytes} bytes. Please use LFS`);
            }
            files.set(v.path, storedRegular(content));
          } else if (line.key === 'lfsFile') {
            const oid = String(v.oid);
            const content = r.lfs.get(oid);
            if (v.algo !== undefined && v.algo !== 'sha256') return ctx.error(res, 400, `Unsupported hash algorithm for ${v.path}`);
            if (!content || content.length !== Number(v.size)) {
              return ctx.error(res, 422, `Your push was rejected because an LFS pointer pointed to a file that does not exist: ${v.path}`);
            }
            files.set(v.path, { size: content.length, sha256: oid, lfs: true, etag: oid, content });
          } else if (line.key === 'deletedFile') {
            if (!files.delete(v.path)) return ctx.error(res, 404, `File not found: ${v.path}`);
          } else if (line.key === 'deletedFolder') {
            for (const p of [...files.keys()]) if (p.startsWith(`${v.path}/`)) files.delete(p);
          } else {
            return ctx.error(res, 400, `Unknown NDJSON key ${String(line.key)}`);
          }
        }
        const c = newCommit(r, summary, files);
        r.commits.push(c);
        ctx.json(res, 200, { success: true, commitOid: c.oid, commitUrl: `${ctx.baseUrl()}/datasets/${r.id}/commit/${c.oid}`, hookOutput: '' });
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/datasets/${repoPath}/resolve/([^/]+)/(.+)$`),
      async handle(req, res, m) {
        const r = readable(res, `${m[1]}/${m[2]}`, ctx.userOf(req));
        if (!r) return;
        const rev = decodeURIComponent(m[3]!);
        const c = commitAt(r, rev);
        if (!c) return revisionNotFound(res, rev);
        const path = decodeSegments(m[4]!);
        const f = path === undefined ? undefined : c.files.get(path);
        if (!f) return ctx.json(res, 404, { error: 'Entry not found' }, { 'X-Error-Code': 'EntryNotFound', 'X-Error-Message': 'Entry not found' });
        if (f.lfs) {
          // The Hub redirects LFS files to a signed storage URL, announcing the object's size and etag.
          res.writeHead(302, {
            Location: signedUrl('cdn', r, f.sha256, f.size),
            'X-Repo-Commit': c.oid,
            'X-Linked-Size': String(f.size),
            'X-Linked-ETag': `"${f.etag}"`,
            ETag: `"${f.etag}"`,
            'Content-Length': '0',
          });
          res.end();
          return;
        }
        serveBytes(req, res, f, { 'X-Repo-Commit': c.oid });
      },
    },
    {
      method: 'GET',
      pattern: new RegExp(`^/_lfs/cdn/datasets/${repoPath}/([0-9a-f]{64})$`),
      async handle(req, res, m, url) {
        const r = repos.get(`${m[1]}/${m[2]}`);
        const oid = m[3]!;
        if (!r || checkSigned('cdn', r, oid, url) === undefined) return ctx.error(res, 403, 'Request has expired or its signature does not match');
        const content = r.lfs.get(oid);
        if (!content) return ctx.error(res, 404, 'The specified key does not exist.');
        serveBytes(req, res, { size: content.length, sha256: oid, lfs: true, etag: oid, content }, {});
      },
    },
  ];

  return { routes, control, stop: async () => {} };
}

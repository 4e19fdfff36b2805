import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { sql } from 'kysely';
import pg from 'pg';
import { Registry } from 'prom-client';
import { createWorld, type World } from '../../src/compose.ts';
import { loadConfig } from '../../src/config.ts';
import { createDb } from '../../src/db/create-db.ts';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded-postgres.ts';
import { migrateToLatest } from '../../src/db/migrate.ts';
import { createLogger } from '../../src/lib/logger.ts';
import { sharedTemporal } from '../support/shared-temporal.ts';
import { insertTask, MIGRATIONS_DIR, REDIS_TEST_URL } from '../support/test-db.ts';

// `npm start` without DATABASE_URL: the same migrations and queries on PGlite behind the wire server, in a folder
// that outlives the process. Several pool connections share PGlite's one backend, so transactions and
// extended-protocol queries from different connections must take turns, whole.

describe('embedded Postgres (PGlite)', function () {
  let dir: string;
  let postgres: EmbeddedPostgres;
  let world: World;

  async function buildWorld(): Promise<World> {
    const temporal = await sharedTemporal();
    const tag = randomBytes(4).toString('hex');
    const config = loadConfig({
      DATABASE_URL: postgres.url,
      REDIS_URL: REDIS_TEST_URL,
      REDIS_PREFIX: `test:${tag}:`,
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      TASK_QUEUE: `tasks-${tag}`,
      JWT_SECRET: randomBytes(32).toString('hex'),
      ENCRYPTION_KEY: randomBytes(32).toString('hex'),
      RESULT_STORE: `file://${path.join(dir, 'results')}`,
    });
    const log = createLogger({ level: 'warn', name: 'test', destination: new Writable({ write: (_c, _e, cb) => cb() }) });
    return createWorld(config, { log, metricsRegistry: new Registry() });
  }

  before(async function () {
    dir = await mkdtemp(path.join(os.tmpdir(), 'orch-embedded-pg-'));
    postgres = await startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres') });
    assert.match(postgres.url, /^postgres:\/\/postgres:[\w-]+@127\.0\.0\.1:\d+\/postgres$/);
    world = await buildWorld();
  });

  after(async function () {
    await world?.close();
    await postgres?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('runs every migration, pg_trgm and the full-text triggers included', async function () {
    const results = await migrateToLatest(world.db, MIGRATIONS_DIR);
    assert.ok(results.length >= 9 && results.every((r) => r.status === 'Success'), JSON.stringify(results));
    const { rows } = await sql<{ extname: string }>`select extname from pg_extension where extname = 'pg_trgm'`.execute(world.db);
    assert.deepEqual(rows, [{ extname: 'pg_trgm' }]);
    assert.deepEqual(await migrateToLatest(world.db, MIGRATIONS_DIR), [], 'a second run has nothing to do');
  });

  it('searches the knowledge graph: ranked full-text with English stemming, and substring matches', async function () {
    const user = await world.db.insertInto('users').values({ login: 'kg-owner' }).returning('id').executeTakeFirstOrThrow();
    const project = await world.db.insertInto('projects').values({ name: 'kg', created_by: user.id }).returning('id').executeTakeFirstOrThrow();
    await world.kg.createEntities(project.id, [
      { name: 'kubernetes', entityType: 'tool', observations: ['orchestrates containers'] },
      { name: 'docker', entityType: 'tool', observations: ['builds images', 'mentions kubernetes'] },
      { name: 'bernoulli', entityType: 'person', observations: [] },
    ]);
    const hits = await world.kg.search(project.id, 'kubernetes', { limit: 10 });
    assert.deepEqual(hits.map((h) => h.name), ['kubernetes', 'docker'], 'the name match ranks above the observation match');
    assert.deepEqual((await world.kg.search(project.id, 'container', { limit: 10 })).map((h) => h.name), ['kubernetes'], 'stemming: container matches containers');
    assert.deepEqual((await world.kg.searchNodes(project.id, 'BERN')).entities.map((e) => e.name).sort(), ['bernoulli', 'docker', 'kubernetes']);
  });

  it('appends concurrently to a task event log with no gap and no duplicate, and rolls a failed change back', async function () {
    const taskId = await insertTask(world.db);
    const appended = await Promise.all(Array.from({ length: 40 }, (_, i) => world.events.append(taskId, 'progress', { i })));
    assert.deepEqual(appended.map((e) => e.seq).sort((a, b) => a - b), Array.from({ length: 40 }, (_, i) => i + 1));
    const listed = await world.events.list(taskId, 0);
    assert.deepEqual(listed.map((e) => e.seq), Array.from({ length: 40 }, (_, i) => i + 1));
    assert.deepEqual(new Set(listed.map((e) => (e.data as { i: number }).i)).size, 40);

    await assert.rejects(
      world.events.appendAll(taskId, [{ type: 'status', data: { status: 'succeeded' } }], async (trx) => {
        await trx.updateTable('tasks').set({ status: 'succeeded' }).where('id', '=', taskId).execute();
        throw new Error('the change fails after writing');
      }),
      /the change fails after writing/,
    );
    const task = await world.db.selectFrom('tasks').select('status').where('id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(task.status, 'running', 'the update inside the failed transaction was rolled back');
    assert.equal(await world.events.lastSeq(taskId), 40, 'and its event was never logged');
  });

  it('keeps a transaction whole while other connections wait, and never mixes their parameters', async function () {
    const a = new pg.Client({ connectionString: postgres.url });
    const b = new pg.Client({ connectionString: postgres.url });
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query('create table turn_check (id int primary key, n int)');
      await a.query('insert into turn_check values (1, 0)');
      await a.query('begin');
      await a.query('update turn_check set n = $1 where id = 1', [1]);
      let bSaw: number | undefined;
      const bRead = b.query<{ n: number }>('select n from turn_check where id = $1', [1]).then((r) => (bSaw = r.rows[0]!.n));
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.equal(bSaw, undefined, 'the other connection waits while the transaction is open');
      await a.query('update turn_check set n = $1 where id = 1', [2]);
      await a.query('commit');
      await bRead;
      assert.equal(bSaw, 2, 'and then sees only the committed value');
    } finally {
      await Promise.all([a.end(), b.end()]);
    }

    const pool = createDb(postgres.url, { maxConnections: 8 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 120 }, async (_, i) => (await sql<{ i: number; t: string }>`select ${i}::int as i, ${`t${i}`}::text as t`.execute(pool)).rows[0]),
      );
      assert.deepEqual(answers, Array.from({ length: 120 }, (_, i) => ({ i, t: `t${i}` })));
    } finally {
      await pool.destroy();
    }
  });

  it('lets in only a client that gives this start\'s password: loopback is open to every user of the machine', async function () {
    const url = new URL(postgres.url);
    assert.ok(url.password.length >= 32, 'the URL carries a long random password');
    const attempt = async (password: string | undefined) => {
      const other = new URL(postgres.url);
      other.password = password ?? '';
      const client = new pg.Client({ connectionString: other.toString(), connectionTimeoutMillis: 5000 });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return (await client.query<{ n: number }>('select count(*)::int as n from projects')).rows[0]!.n;
      } finally {
        await client.end().catch(() => undefined);
      }
    };
    await assert.rejects(attempt(`${url.password.slice(0, -1)}x`), (err: { code?: string }) => err.code === '28P01', 'a wrong password: 28P01');
    await assert.rejects(attempt(''), 'no password');
    await assert.rejects(attempt(`${decodeURIComponent(url.password)}x`), (err: { code?: string }) => err.code === '28P01', 'the password and more');
    assert.equal(typeof (await attempt(decodeURIComponent(url.password))), 'number', 'the right one');
  });

  it('drops a connection whose message lengths are impossible or too long before the password, and serves the rest', async function () {
    const { hostname, port } = new URL(postgres.url);
    const closedAfter = (bytes: Buffer) =>
      new Promise<void>((resolve, reject) => {
        const socket = net.connect(Number(port), hostname, () => socket.write(bytes));
        socket.on('data', () => undefined);
        socket.on('error', () => undefined);
        const timer = setTimeout(() => {
          socket.destroy();
          reject(new Error(`still open after ${bytes.subarray(0, 16).toString('hex')}`));
        }, 3000);
        socket.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    const startup = () => {
      const body = Buffer.concat([Buffer.from([0, 3, 0, 0]), Buffer.from('user\0postgres\0database\0postgres\0\0')]);
      const head = Buffer.alloc(4);
      head.writeInt32BE(4 + body.length);
      return Buffer.concat([head, body]);
    };
    const message = (type: string, length: number) => {
      const m = Buffer.alloc(5);
      m.write(type, 0);
      m.writeInt32BE(length, 1);
      return m;
    };
    await closedAfter(Buffer.alloc(8)); // a startup length of 0
    await closedAfter(Buffer.from([0x40, 0, 0, 0, 0, 3, 0, 0])); // a 1 GiB startup packet
    await closedAfter(Buffer.concat([startup(), message('p', -1)])); // a negative length, which would never advance the buffer
    await closedAfter(Buffer.concat([startup(), message('p', 64 << 20)])); // 64 MiB, offered before the password
    const client = new pg.Client({ connectionString: postgres.url });
    await client.connect();
    try {
      assert.equal((await client.query<{ one: number }>('select 1 as one')).rows[0]!.one, 1);
    } finally {
      await client.end();
    }
  });

  it('sends a large answer intact while other connections keep the backend busy', async function () {
    // PGlite hands each answer over as a view of its own memory. Written to a socket that cannot take it all at once,
    // such a view would be sent later, after other queries had overwritten it: the client then read a broken stream
    // and waited forever. 8 MiB answers are well past what a loopback socket takes in one write.
    const big = new pg.Client({ connectionString: postgres.url });
    const pool = createDb(postgres.url, { maxConnections: 4 });
    await big.connect();
    try {
      const expected = (n: number) => Array.from({ length: 1 << 18 }, (_, i) => `${n}:${i};`.padEnd(32, '.')).join('');
      const bigQuery = (n: number) =>
        big.query<{ v: string }>(`select string_agg(rpad($1::text || ':' || i || ';', 32, '.'), '' order by i) as v from generate_series(0, ${(1 << 18) - 1}) i`, [n]);
      let stop = false;
      const chatter = Promise.all(
        Array.from({ length: 4 }, async (_, c) => {
          for (let i = 0; !stop; i++) {
            const r = await sql<{ t: string }>`select ${`c${c}-${i}-`.repeat(50)}::text as t`.execute(pool);
            assert.equal(r.rows[0]!.t, `c${c}-${i}-`.repeat(50));
          }
        }),
      );
      for (let n = 0; n < 4; n++) {
        const r = await Promise.race([
          bigQuery(n),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`answer ${n} never came whole`)), 20_000)),
        ]);
        assert.equal(r.rows[0]!.v.length, 32 << 18);
        assert.ok(r.rows[0]!.v === expected(n), `answer ${n} arrived with other bytes in it`);
      }
      stop = true;
      await chatter;
    } finally {
      await big.end().catch(() => undefined);
      await pool.destroy();
    }
  });

  it('keeps its data across a restart', async function () {
    const user = await world.db.selectFrom('users').select('id').where('login', '=', 'kg-owner').executeTakeFirstOrThrow();
    const project = await world.db.selectFrom('projects').select('id').where('created_by', '=', user.id).executeTakeFirstOrThrow();
    await world.close();
    await postgres.stop();

    postgres = await startEmbeddedPostgres({ dataDir: path.join(dir, 'postgres') });
    world = await buildWorld();
    assert.deepEqual(await migrateToLatest(world.db, MIGRATIONS_DIR), [], 'the migrations are remembered');
    assert.deepEqual((await world.kg.search(project.id, 'kubernetes', { limit: 10 })).map((h) => h.name), ['kubernetes', 'docker']);
    const { rows } = await sql<{ n: number; events: number }>`select (select n from turn_check where id = 1) as n, (select count(*)::int from task_events) as events`.execute(world.db);
    assert.deepEqual(rows, [{ n: 2, events: 40 }]);
  });

  it('records a workflow transition, row and events, in one statement beside concurrent appends', async function () {
    const taskId = await insertTask(world.db);
    const state = {
      status: 'failed' as const,
      target: { kind: 'oracle' as const, server: 'tools' },
      attempts: [{ kind: 'oracle' as const, server: 'tools', outcome: 'failed' as const, reason: 'down', at: new Date().toISOString() }],
      consent: 'not_needed' as const,
      error: { code: 'AllTargetsFailed', message: 'No target could run the task.' },
    };
    await Promise.all([world.tasks.recordState(taskId, state), ...Array.from({ length: 10 }, (_, i) => world.events.append(taskId, 'progress', { i }))]);
    const listed = await world.events.list(taskId, 0);
    assert.deepEqual(listed.map((e) => e.seq), Array.from({ length: 12 }, (_, i) => i + 1));
    const at = listed.findIndex((e) => e.type === 'error');
    assert.deepEqual(listed[at]!.data, state.error);
    assert.deepEqual([listed[at + 1]!.type, listed[at + 1]!.data.status], ['status', 'failed'], 'the error and its status take consecutive seqs');
    const row = await world.db.selectFrom('tasks').select(['status', 'target', 'attempts', 'error', 'event_seq', 'finished_at']).where('id', '=', taskId).executeTakeFirstOrThrow();
    assert.deepEqual({ status: row.status, target: row.target, attempts: row.attempts, error: row.error, seq: row.event_seq }, { status: 'failed', target: state.target, attempts: state.attempts, error: state.error, seq: 12 });
    assert.ok(row.finished_at);
    await world.tasks.recordState(taskId, state);
    assert.equal(await world.events.lastSeq(taskId), 12, 'a retried write after the end logs nothing');
  });
});

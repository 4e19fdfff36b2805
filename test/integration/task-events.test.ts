import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createTaskEventFeed, isTerminalStatusEvent } from '../../src/core/task-event-feed.ts';
import { createTaskEvents, TaskNotFoundError, type TaskEvent } from '../../src/core/task-events.ts';
import { startTestMcpServer, type TestMcpServer } from '../support/mcp-test-server.ts';
import { readEvents } from '../support/sse-client.ts';
import { startStack, type Stack } from '../support/stack.ts';
import { EMBEDDED_TEST_STORES } from '../support/embedded-test-db.ts';
import { createTestDb, insertTask, REDIS_TEST_URL, type TestDb } from '../support/test-db.ts';


const seqs = (events: TaskEvent[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function numsub(redis: Redis, channel: string): Promise<number> {
  const reply = (await redis.call('PUBSUB', 'NUMSUB', channel)) as [string, number];
  return Number(reply[1]);
}

async function until(cond: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

// The service over raw Redis pub/sub: not part of the embedded pass, whose stores are in process.
(EMBEDDED_TEST_STORES ? describe.skip : describe)('task events', () => {
  let t: TestDb;
  let publisher: Redis;
  let subscriber: Redis;
  let observer: Redis;
  const prefix = `test:${randomBytes(4).toString('hex')}:`;
  let events: ReturnType<typeof createTaskEvents>;
  /** Writes events without publishing them: what a lost Redis message looks like to a follower. */
  let silentEvents: ReturnType<typeof createTaskEvents>;
  let feed: ReturnType<typeof createTaskEventFeed>;
  const published: string[] = [];

  before(async () => {
    t = await createTestDb('events');
    publisher = new Redis(REDIS_TEST_URL);
    subscriber = new Redis(REDIS_TEST_URL);
    observer = new Redis(REDIS_TEST_URL);
    events = createTaskEvents({ db: t.db, publisher, channelPrefix: prefix, onPublished: (type) => published.push(type) });
    silentEvents = createTaskEvents({ db: t.db, publisher, channelPrefix: `${prefix}nowhere:` });
    // A long poll interval so these tests prove that gaps are filled by the skip-ahead read, not by polling.
    feed = createTaskEventFeed({ events, subscriber, channelPrefix: prefix, pollIntervalMs: 60_000 });
  });

  after(async () => {
    await feed.close();
    await Promise.all([publisher.quit(), subscriber.quit(), observer.quit()]);
    await t.drop();
  });

  it('gives 20 concurrent appends to one task distinct, gapless seqs that match the rows', async () => {
    const taskId = await insertTask(t.db);
    const appended = await Promise.all(range(1, 20).map((i) => events.append(taskId, 'progress', { i })));
    assert.deepEqual(seqs(appended).sort((a, b) => a - b), range(1, 20));
    const rows = await events.list(taskId, 0);
    assert.deepEqual(seqs(rows), range(1, 20));
    for (const a of appended) {
      const row = rows.find((r) => r.seq === a.seq)!;
      assert.deepEqual(row.data, a.data);
      assert.equal(row.createdAt, a.createdAt);
    }
    assert.equal(await events.lastSeq(taskId), 20);
    assert.deepEqual(seqs(await events.list(taskId, 15, 3)), [16, 17, 18]);
    assert.ok(published.length >= 20);
  });

  it('rejects appends to an unknown task and writes nothing', async () => {
    const taskId = randomUUID();
    await assert.rejects(events.append(taskId, 'status', { status: 'running' }), TaskNotFoundError);
    await assert.rejects(events.lastSeq(taskId), TaskNotFoundError);
    const count = await t.db.selectFrom('task_events').select((eb) => eb.fn.countAll().as('n')).where('task_id', '=', taskId).executeTakeFirstOrThrow();
    assert.equal(Number(count.n), 0);
  });

  async function followWhileAppending(afterSeq: number) {
    const taskId = await insertTask(t.db);
    for (let i = 1; i <= 5; i++) await events.append(taskId, 'progress', { i });
    const got: TaskEvent[] = [];
    let concurrent = 0;
    let maxConcurrent = 0;
    const following = feed.follow(
      taskId,
      afterSeq,
      async (e) => {
        concurrent++;
        maxConcurrent = Math.max(maxConcurrent, concurrent);
        got.push(e);
        await sleep(Math.random() * 3);
        concurrent--;
      },
      new AbortController().signal,
    );
    // Four writers at once so publish order often differs from commit order.
    await Promise.all(range(1, 4).map(async (w) => {
      for (let i = 0; i < 10; i++) await events.append(taskId, 'progress', { w, i });
    }));
    await events.append(taskId, 'status', { status: 'succeeded' });
    await events.append(taskId, 'progress', { after: 'terminal' });
    await following;
    return { got, maxConcurrent };
  }

  it('follows from 0 and sees every event exactly once, in order, while appends run concurrently', async () => {
    const { got, maxConcurrent } = await followWhileAppending(0);
    assert.deepEqual(seqs(got), range(1, 46));
    assert.equal(got.at(-1)!.type, 'status');
    assert.equal(maxConcurrent, 1, 'deliveries must be serialised');
  });

  it('follows from a middle seq and stops at the terminal event', async () => {
    const { got } = await followWhileAppending(3);
    assert.deepEqual(seqs(got), range(4, 46));
    assert.ok(isTerminalStatusEvent(got.at(-1)!));
  });

  it('reads the missing range from the database when a live event skips ahead, and drops duplicates', async () => {
    const taskId = await insertTask(t.db);
    const got: TaskEvent[] = [];
    const ac = new AbortController();
    const following = feed.follow(taskId, 0, (e) => void got.push(e), ac.signal);
    await until(async () => (await numsub(observer, `${prefix}task-events:${taskId}`)) === 1, 'the subscription');
    await events.append(taskId, 'progress', { n: 1 });
    await until(() => got.length === 1, 'the first event');
    await silentEvents.append(taskId, 'progress', { n: 2, silent: true });
    await silentEvents.append(taskId, 'progress', { n: 3, silent: true });
    const fourth = await events.append(taskId, 'progress', { n: 4 });
    await until(() => got.length === 4, 'the gap to be filled');
    assert.deepEqual(seqs(got), [1, 2, 3, 4]);
    assert.deepEqual(got[1]!.data, { n: 2, silent: true });

    // Redelivered and stale messages must not reach the follower again.
    await publisher.publish(`${prefix}task-events:${taskId}`, JSON.stringify(fourth));
    await publisher.publish(`${prefix}task-events:${taskId}`, JSON.stringify({ ...fourth, seq: 2 }));
    await events.append(taskId, 'status', { status: 'failed' });
    await following;
    assert.deepEqual(seqs(got), [1, 2, 3, 4, 5]);
  });

  it('stops when the signal aborts and shares one subscription per channel, dropped by the last follower', async () => {
    const taskId = await insertTask(t.db);
    const channel = `${prefix}task-events:${taskId}`;
    const a = new AbortController();
    const b = new AbortController();
    const gotA: TaskEvent[] = [];
    const gotB: TaskEvent[] = [];
    const followA = feed.follow(taskId, 0, (e) => void gotA.push(e), a.signal);
    const followB = feed.follow(taskId, 0, (e) => void gotB.push(e), b.signal);
    await until(async () => (await numsub(observer, channel)) === 1, 'the subscription');

    await events.append(taskId, 'progress', { n: 1 });
    await until(() => gotA.length === 1 && gotB.length === 1, 'both followers');
    assert.equal(await numsub(observer, channel), 1, 'one subscription shared by two followers');

    a.abort();
    await followA;
    assert.equal(await numsub(observer, channel), 1, 'still subscribed for the remaining follower');
    await events.append(taskId, 'progress', { n: 2 });
    await until(() => gotB.length === 2, 'the remaining follower');
    assert.equal(gotA.length, 1);

    b.abort();
    await followB;
    assert.equal(await numsub(observer, channel), 0, 'unsubscribed after the last follower left');
  });

  it('returns at once for an already aborted signal, and replays a finished task then stops', async () => {
    const taskId = await insertTask(t.db);
    await events.append(taskId, 'progress', {});
    await events.append(taskId, 'status', { status: 'canceled' });
    const ac = new AbortController();
    ac.abort();
    let calls = 0;
    await feed.follow(taskId, 0, () => void calls++, ac.signal);
    assert.equal(calls, 0);
    const got: TaskEvent[] = [];
    await feed.follow(taskId, 0, (e) => void got.push(e), new AbortController().signal);
    assert.deepEqual(seqs(got), [1, 2]);
    assert.equal(await numsub(observer, `${prefix}task-events:${taskId}`), 0);
  });

  it('resolves at once for a finished task when afterSeq is at or past the end of its log', async () => {
    const taskId = await insertTask(t.db);
    await events.append(taskId, 'progress', {});
    await events.append(taskId, 'status', { status: 'succeeded' });
    for (const afterSeq of [2, 3, 2_147_483_647]) {
      const got: TaskEvent[] = [];
      // The feed polls once a minute here: only knowing the log has ended can make this quick.
      const giveUp = AbortSignal.timeout(5_000);
      await feed.follow(taskId, afterSeq, (e) => void got.push(e), giveUp);
      assert.equal(giveUp.aborted, false, `afterSeq ${afterSeq}: still following after 5 s`);
      assert.deepEqual(got, [], `afterSeq ${afterSeq}`);
    }
    assert.equal(await numsub(observer, `${prefix}task-events:${taskId}`), 0);
  });

  it('past the end of a running task\'s log, replays nothing and delivers what is logged next, to the terminal event', async () => {
    const taskId = await insertTask(t.db);
    await events.append(taskId, 'status', { status: 'running' });
    const got: TaskEvent[] = [];
    const giveUp = AbortSignal.timeout(10_000);
    const following = feed.follow(taskId, 1000, (e) => void got.push(e), giveUp);
    await until(async () => (await numsub(observer, `${prefix}task-events:${taskId}`)) === 1, 'the subscription');
    await events.append(taskId, 'progress', { step: 1 });
    await events.append(taskId, 'status', { status: 'failed' });
    await following;
    assert.deepEqual(seqs(got), [2, 3]);
    assert.ok(isTerminalStatusEvent(got.at(-1)!));
    assert.equal(giveUp.aborted, false, 'ended by the terminal event');
  });

  it('catches up by polling when a publish is lost and nothing follows it', async () => {
    const sub = new Redis(REDIS_TEST_URL);
    const polling = createTaskEventFeed({ events, subscriber: sub, channelPrefix: prefix, pollIntervalMs: 100 });
    try {
      const taskId = await insertTask(t.db);
      const got: TaskEvent[] = [];
      const following = polling.follow(taskId, 0, (e) => void got.push(e), new AbortController().signal);
      await until(async () => (await numsub(observer, `${prefix}task-events:${taskId}`)) === 1, 'the subscription');
      await silentEvents.append(taskId, 'status', { status: 'succeeded' });
      await following;
      assert.deepEqual(seqs(got), [1]);
    } finally {
      await polling.close();
      await sub.quit();
    }
  });

  it('close() ends running follows and unsubscribes', async () => {
    const sub = new Redis(REDIS_TEST_URL);
    const own = createTaskEventFeed({ events, subscriber: sub, channelPrefix: prefix });
    try {
      const taskId = await insertTask(t.db);
      const following = own.follow(taskId, 0, () => {}, new AbortController().signal);
      await until(async () => (await numsub(observer, `${prefix}task-events:${taskId}`)) === 1, 'the subscription');
      await own.close();
      await following;
      assert.equal(await numsub(observer, `${prefix}task-events:${taskId}`), 0);
      await assert.rejects(own.follow(taskId, 0, () => {}, new AbortController().signal), /closed/);
    } finally {
      await sub.quit();
    }
  });
});

describe('task events over SSE with a Last-Event-ID', function () {
  let stack: Stack;
  let oracle: TestMcpServer;
  let observer: Redis;
  let token: string;
  let projectId: string;
  let finished: { id: string; lastSeq: number };

  const submit = async (tool: string, args: Record<string, unknown>): Promise<string> => {
    const r = await stack.api('POST', '/v1/tasks', { token, body: { projectId, tool, arguments: args } });
    assert.equal(r.status, 202, r.text);
    return r.body.id;
  };

  before(async function () {
    oracle = await startTestMcpServer({ name: 'oracle' });
    stack = await startStack();
    // Looks at Redis subscriptions; the embedded pass has no Redis (and must never reach the real one).
    if (!EMBEDDED_TEST_STORES) observer = new Redis(REDIS_TEST_URL);
    token = await stack.token('erin');
    projectId = (await stack.api('POST', '/v1/projects', { token, body: { name: 'sse' } })).body.id;
    const reg = await stack.api('POST', '/v1/mcps', { token, body: { name: 'tools', oracleUrl: oracle.url } });
    assert.equal(reg.status, 201, reg.text);
    const id = await submit('echo', { text: 'hi' });
    assert.equal((await stack.waitForStatus(token, id, ['succeeded', 'failed', 'canceled'])).status, 'succeeded');
    finished = { id, lastSeq: await stack.world.events.lastSeq(id) };
  });

  after(async function () {
    await observer?.quit();
    await stack?.stop();
    await oracle?.stop();
  });

  it('sends only the snapshot and closes for a finished task the client has seen to the end', async function () {
    assert.ok(finished.lastSeq >= 2, `the task logged ${finished.lastSeq} events`);
    for (const lastEventId of [finished.lastSeq, finished.lastSeq + 1, 2_147_483_647].map(String)) {
      // Bounded wait: a stream that stays open is cut after 5 s and reported as not closed by the server.
      const viaHeader = await readEvents(`${stack.url}/v1/tasks/${finished.id}/events`, { token, lastEventId, timeoutMs: 5_000 });
      const viaQuery = await readEvents(`${stack.url}/v1/tasks/${finished.id}/events?lastEventId=${lastEventId}`, { token, timeoutMs: 5_000 });
      for (const read of [viaHeader, viaQuery]) {
        assert.equal(read.status, 200);
        assert.equal(read.closedByServer, true, `Last-Event-ID ${lastEventId}: the stream stayed open`);
        assert.deepEqual(read.events.map((e) => e.event), ['snapshot'], `Last-Event-ID ${lastEventId}`);
        assert.equal(read.events[0]!.data.status, 'succeeded');
      }
    }
  });

  it('still replays what follows an earlier Last-Event-ID of a finished task', async function () {
    const read = await readEvents(`${stack.url}/v1/tasks/${finished.id}/events`, { token, lastEventId: String(finished.lastSeq - 1), timeoutMs: 5_000 });
    assert.equal(read.closedByServer, true);
    assert.deepEqual(read.events.map((e) => e.id ?? e.event), ['snapshot', String(finished.lastSeq)]);
  });

  it('answers 400 InvalidLastEventId, before any stream opens, for ids that are not a seq', async function () {
    for (const bad of ['2147483648', '9007199254740991', 'abc', '-1']) {
      const url = `/v1/tasks/${finished.id}/events`;
      for (const res of [
        await stack.api('GET', url, { token, headers: { 'Last-Event-ID': bad } }),
        await stack.api('GET', `${url}?lastEventId=${encodeURIComponent(bad)}`, { token }),
      ]) {
        assert.equal(res.status, 400, `${bad}: ${res.text}`);
        assert.match(res.headers.get('content-type') ?? '', /^application\/problem\+json/);
        assert.equal(res.body.code, 'InvalidLastEventId');
        assert.doesNotMatch(res.text, /event:|snapshot/);
      }
    }
  });

  it('past the end of a running task\'s log, delivers the events logged next and closes after the terminal one', async function () {
    // Knowing when the stream has subscribed needs a look into Redis (PUBSUB NUMSUB).
    if (EMBEDDED_TEST_STORES) this.skip();
    const id = await submit('slow', { ms: 60_000 });
    await stack.waitForStatus(token, id, ['running']);
    const endAtConnect = await stack.world.events.lastSeq(id);
    const channel = `${stack.config.redisPrefix}task-events:${id}`;
    const reading = readEvents(`${stack.url}/v1/tasks/${id}/events`, { token, lastEventId: '1000', timeoutMs: 30_000 });
    // Once the stream has subscribed, everything logged from then on must reach it.
    await until(async () => (await numsub(observer, channel)) === 1, 'the stream\'s subscription');
    const cancel = await stack.api('POST', `/v1/tasks/${id}/cancel`, { token });
    assert.equal(cancel.status, 202, cancel.text);
    const read = await reading;
    assert.equal(read.closedByServer, true, 'the stream closes after the terminal event');
    assert.equal(read.events[0]!.event, 'snapshot');
    const logged = read.events.slice(1);
    assert.ok(logged.length >= 1, 'live events arrived');
    assert.ok(logged.every((e) => Number(e.id) > endAtConnect), `ids ${logged.map((e) => e.id).join(',')} after ${endAtConnect}`);
    assert.deepEqual(logged.map((e) => Number(e.id)), logged.map((_, i) => endAtConnect + 1 + i), 'no gaps');
    assert.equal(logged.at(-1)!.event, 'status');
    assert.equal(logged.at(-1)!.data.status, 'canceled');
    assert.equal(Number(logged.at(-1)!.id), await stack.world.events.lastSeq(id));
  });
});

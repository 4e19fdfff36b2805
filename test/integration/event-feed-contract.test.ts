import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { createMemoryPubSub, type MessagePublisher, type MessageSubscriber } from '../../src/core/pub-sub.ts';
import { createTaskEventFeed } from '../../src/core/task-event-feed.ts';
import { createTaskEvents, taskEventChannel, type TaskEvent } from '../../src/core/task-events.ts';
import { until } from '../support/until.ts';
import { createTestDb, insertTask, REDIS_TEST_URL, type TestDb } from '../support/test-db.ts';

/** The live event transport: one publisher, and as many subscribers (each a connection of its own) as asked for. */
interface PubSubKind {
  name: string;
  publisher(): MessagePublisher;
  subscriber(): MessageSubscriber;
  close(): Promise<void>;
}

function redisKind(): PubSubKind {
  const connections: Redis[] = [];
  const open = () => {
    const c = new Redis(REDIS_TEST_URL);
    connections.push(c);
    return c;
  };
  let publisher: Redis | undefined;
  return {
    name: 'Redis',
    publisher: () => (publisher ??= open()),
    subscriber: open,
    close: async () => void (await Promise.all(connections.map((c) => c.quit()))),
  };
}

function memoryKind(): PubSubKind {
  const bus = createMemoryPubSub();
  const subscribers: Array<{ disconnect(): void }> = [];
  return {
    name: 'in process',
    publisher: () => bus.publisher,
    subscriber() {
      const s = bus.subscriber();
      subscribers.push(s);
      return s;
    },
    close: async () => subscribers.forEach((s) => s.disconnect()),
  };
}

const waitFor = (check: () => boolean | Promise<boolean>, what: string) => until(what, check, 10_000);

function collect(subscriber: MessageSubscriber) {
  const got: Array<[string, string]> = [];
  subscriber.on('message', (channel, message) => got.push([channel, message]));
  return got;
}

// One contract, two transports: the in-process feed must deliver as the Redis one does.
for (const kind of [redisKind(), memoryKind()]) {
  describe(`task event feed (${kind.name})`, () => {
    let t: TestDb;
    const prefix = `test:feed:${randomBytes(4).toString('hex')}:`;

    before(async () => {
      t = await createTestDb('feed');
    });

    after(async () => {
      await kind.close();
      await t.drop();
    });

    it('delivers a channel’s messages to its subscribers in publish order, and no other channel’s', async () => {
      const publisher = kind.publisher();
      const a = kind.subscriber();
      const b = kind.subscriber();
      const gotA = collect(a);
      const gotB = collect(b);
      await a.subscribe(`${prefix}one`);
      await b.subscribe(`${prefix}one`);
      assert.equal(await publisher.publish(`${prefix}two`, 'elsewhere'), 0, 'nobody listens there');
      const sent = Array.from({ length: 200 }, (_, i) => `m${i}`);
      const receivers = await Promise.all(sent.map((m) => publisher.publish(`${prefix}one`, m)));
      assert.deepEqual(new Set(receivers), new Set([2]));
      await waitFor(() => gotA.length === 200 && gotB.length === 200, 'both subscribers got every message');
      assert.deepEqual(gotA.map(([, m]) => m), sent);
      assert.deepEqual(gotB.map(([, m]) => m), sent);
      assert.ok(gotA.every(([c]) => c === `${prefix}one`));
    });

    it('stops delivering to a subscriber once its unsubscribe has resolved', async () => {
      const publisher = kind.publisher();
      const leaving = kind.subscriber();
      const staying = kind.subscriber();
      const gotLeaving = collect(leaving);
      const gotStaying = collect(staying);
      const channel = `${prefix}leave`;
      await leaving.subscribe(channel);
      await staying.subscribe(channel);
      await publisher.publish(channel, 'before');
      await leaving.unsubscribe(channel);
      assert.equal(await publisher.publish(channel, 'after'), 1);
      await waitFor(() => gotStaying.length === 2, 'the staying subscriber got both');
      await sleep(100);
      assert.deepEqual(gotLeaving.map(([, m]) => m), ['before']);
      assert.deepEqual(gotStaying.map(([, m]) => m), ['before', 'after']);
    });

    it('follows a task live through pub/sub, in seq order, to its terminal event, then unsubscribes', async () => {
      const events = createTaskEvents({ db: t.db, publisher: kind.publisher(), channelPrefix: prefix });
      // A poll interval far beyond the test: every event must arrive through the transport.
      const feed = createTaskEventFeed({ events, subscriber: kind.subscriber(), channelPrefix: prefix, pollIntervalMs: 60_000 });
      try {
        const taskId = await insertTask(t.db);
        await events.append(taskId, 'status', { status: 'queued' });
        const seen: TaskEvent[] = [];
        const following = feed.follow(taskId, 1, (e) => void seen.push(e), new AbortController().signal);
        const channel = taskEventChannel(prefix, taskId);
        // The follower is subscribed once a publish reaches someone.
        await waitFor(async () => (await kind.publisher().publish(channel, 'not an event')) === 1, 'the follower subscribed');
        for (let i = 1; i <= 15; i++) await events.append(taskId, 'progress', { i });
        await events.appendAll(taskId, [
          { type: 'result', data: { storage: 'inline' } },
          { type: 'status', data: { status: 'succeeded' } },
        ]);
        await Promise.race([following, sleep(10_000).then(() => assert.fail('the follower did not finish within 10 s'))]);
        assert.deepEqual(seen.map((e) => e.seq), Array.from({ length: 17 }, (_, i) => i + 2));
        assert.deepEqual(seen.slice(0, 15).map((e) => e.data.i), Array.from({ length: 15 }, (_, i) => i + 1));
        assert.equal(seen.at(-1)!.data.status, 'succeeded');
        await waitFor(async () => (await kind.publisher().publish(channel, 'not an event')) === 0, 'the follower unsubscribed');
      } finally {
        await feed.close();
      }
    });

    it('stops a follower when its signal aborts and delivers nothing after', async () => {
      const events = createTaskEvents({ db: t.db, publisher: kind.publisher(), channelPrefix: prefix });
      const feed = createTaskEventFeed({ events, subscriber: kind.subscriber(), channelPrefix: prefix, pollIntervalMs: 60_000 });
      try {
        const taskId = await insertTask(t.db);
        const abort = new AbortController();
        const seen: number[] = [];
        const following = feed.follow(taskId, 0, (e) => void seen.push(e.seq), abort.signal);
        const channel = taskEventChannel(prefix, taskId);
        await waitFor(async () => (await kind.publisher().publish(channel, 'not an event')) === 1, 'the follower subscribed');
        await events.append(taskId, 'progress', { i: 1 });
        await waitFor(() => seen.length === 1, 'the first event arrived');
        abort.abort();
        await following;
        await events.append(taskId, 'progress', { i: 2 });
        await sleep(100);
        assert.deepEqual(seen, [1]);
        assert.equal(await kind.publisher().publish(channel, 'not an event'), 0, 'the channel has no subscriber left');
      } finally {
        await feed.close();
      }
    });
  });
}

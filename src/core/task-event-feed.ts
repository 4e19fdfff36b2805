import type { TaskStatus } from './task-model.ts';
import { bestEffort } from '../lib/best-effort.ts';
import type { MessageSubscriber } from './pub-sub.ts';
import { taskEventChannel, type TaskEvent, type TaskEvents } from './task-events.ts';

const TERMINAL: readonly TaskStatus[] = ['succeeded', 'failed', 'canceled'];

/** In this system a task's log ends with the status event that reaches a terminal status. */
export function isTerminalStatusEvent(e: TaskEvent): boolean {
  return e.type === 'status' && TERMINAL.includes(e.data.status as TaskStatus);
}

export interface FollowOptions {
  isTerminal?: (e: TaskEvent) => boolean;
}

type Listener = (e: TaskEvent) => void;

interface ChannelEntry {
  listeners: Set<Listener>;
  subscribed: boolean;
  /** SUBSCRIBE/UNSUBSCRIBE for one channel run one at a time, each bringing Redis in line with `listeners`. */
  op: Promise<void>;
}

/**
 * Follows ordered logs kept in Postgres (a task's events; with `channelFor`, any log of the same shape, such as an agent
 * run's), live from pub/sub with the log as the source of truth.
 */
export function createTaskEventFeed(deps: {
  events: Pick<TaskEvents, 'list' | 'lastSeq'>;
  /** The channel a log's new events are published on (default: the task event channel). */
  channelFor?: (id: string) => string;
  /** A dedicated Redis connection (it enters subscriber mode), or an in-process subscriber. The caller owns it and closes it. */
  subscriber: MessageSubscriber;
  channelPrefix?: string;
  isTerminal?: (e: TaskEvent) => boolean;
  /** Redis pub/sub is at-most-once (a reconnect or failed publish drops messages), so followers also poll. */
  pollIntervalMs?: number;
  pageSize?: number;
  /** How long a new follower waits for its subscription before it starts from the log alone (default 2000). */
  subscribeTimeoutMs?: number;
}) {
  const { events, subscriber } = deps;
  const prefix = deps.channelPrefix ?? '';
  const channelFor = deps.channelFor ?? ((id: string) => taskEventChannel(prefix, id));
  const channelStart = channelFor('');
  const pollMs = deps.pollIntervalMs ?? 5000;
  const pageSize = deps.pageSize ?? 500;
  const subscribeTimeoutMs = deps.subscribeTimeoutMs ?? 2000;
  const channels = new Map<string, ChannelEntry>();
  /** Each running follow(): how to stop it and when it has finished cleaning up. */
  const running = new Map<AbortController, Promise<void>>();
  let closed = false;

  const onMessage = (channel: string, message: string) => {
    if (!channel.startsWith(channelStart)) return;
    const entry = channels.get(channel);
    if (!entry || entry.listeners.size === 0) return;
    let event: TaskEvent;
    try {
      event = JSON.parse(message) as TaskEvent;
    } catch {
      return;
    }
    if (typeof event?.seq !== 'number') return;
    for (const l of entry.listeners) l(event);
  };
  subscriber.on('message', onMessage);

  function reconcile(channel: string, entry: ChannelEntry): Promise<void> {
    entry.op = entry.op
      .catch(() => {})
      .then(async () => {
        const wanted = entry.listeners.size > 0;
        if (wanted && !entry.subscribed) {
          await subscriber.subscribe(channel);
          entry.subscribed = true;
        } else if (!wanted && entry.subscribed) {
          await subscriber.unsubscribe(channel);
          entry.subscribed = false;
        }
        if (!wanted && !entry.subscribed && channels.get(channel) === entry && entry.listeners.size === 0) {
          channels.delete(channel);
        }
      });
    return entry.op;
  }

  /** A subscription that failed (Redis was away) is tried again; until then the follower polls. */
  function resubscribe(channel: string): void {
    const entry = channels.get(channel);
    if (entry && entry.listeners.size > 0 && !entry.subscribed) reconcile(channel, entry).catch(() => undefined);
  }

  function addListener(channel: string, listener: Listener): Promise<void> {
    let entry = channels.get(channel);
    if (!entry) {
      entry = { listeners: new Set(), subscribed: false, op: Promise.resolve() };
      channels.set(channel, entry);
    }
    entry.listeners.add(listener);
    return reconcile(channel, entry);
  }

  async function removeListener(channel: string, listener: Listener): Promise<void> {
    const entry = channels.get(channel);
    if (!entry || !entry.listeners.delete(listener)) return;
    // A failed UNSUBSCRIBE leaves `subscribed` set; the next reconcile of this channel tries again.
    await reconcile(channel, entry).catch(() => {});
  }

  return {
    /**
     * Delivers every event of the task with seq > afterSeq exactly once, in seq order, awaiting onEvent
     * between deliveries. Resolves when `signal` aborts, after the terminal event, or on close().
     * An afterSeq at or past the end of the log means "seen it all": nothing is replayed, every event logged from
     * now on is delivered, and if the log already ends with the terminal event it resolves at once.
     */
    async follow(
      taskId: string,
      afterSeq: number,
      onEvent: (e: TaskEvent) => void | Promise<void>,
      signal: AbortSignal,
      options: FollowOptions = {},
    ): Promise<void> {
      if (closed) throw new Error('the task event feed is closed');
      if (signal.aborted) return;
      const isTerminal = options.isTerminal ?? deps.isTerminal ?? isTerminalStatusEvent;
      const channel = channelFor(taskId);
      const stop = new AbortController();
      const pending: TaskEvent[] = [];
      let wake: (() => void) | undefined;
      const notify = () => {
        const w = wake;
        wake = undefined;
        w?.();
      };
      const listener: Listener = (e) => {
        pending.push(e);
        notify();
      };
      const stopped = () => signal.aborted || stop.signal.aborted;
      let last = afterSeq;
      let done = false;

      const deliver = async (e: TaskEvent) => {
        last = e.seq;
        await onEvent(e);
        if (isTerminal(e)) done = true;
      };
      // Reads the log after `last`. Covers any gap: when seq N is visible every seq below it is committed.
      const catchUp = async () => {
        while (!done && !stopped()) {
          const page = await events.list(taskId, last, pageSize);
          for (const e of page) {
            if (done || stopped()) return;
            if (e.seq > last) await deliver(e);
          }
          if (page.length < pageSize) return;
        }
      };

      // Read before subscribing: whatever is logged after this read, the catch-up below delivers.
      if (afterSeq > 0) {
        const end = await events.lastSeq(taskId);
        if (end <= afterSeq) {
          last = end;
          const [tail] = end > 0 ? await events.list(taskId, end - 1, 1) : [];
          if (tail && isTerminal(tail)) return;
        }
        if (closed || signal.aborted) return;
      }

      let finished!: () => void;
      running.set(stop, new Promise<void>((resolve) => (finished = resolve)));
      signal.addEventListener('abort', notify);
      stop.signal.addEventListener('abort', notify);
      try {
        // Subscribe before replaying so an event committed during the replay arrives live instead of being lost.
        // With Redis away the follower still works, from the log alone, and subscribes again on later polls.
        await bestEffort('subscribe', () => addListener(channel, listener), { timeoutMs: subscribeTimeoutMs, onError: () => undefined });
        await catchUp();
        while (!done && !stopped()) {
          if (pending.length === 0) {
            let timer: NodeJS.Timeout | undefined;
            await new Promise<void>((resolve) => {
              wake = resolve;
              timer = setTimeout(resolve, pollMs);
            });
            clearTimeout(timer);
            wake = undefined;
            if (pending.length === 0) {
              resubscribe(channel);
              await catchUp();
              continue;
            }
          }
          // Publish order may differ from commit order; take the lowest seq seen so far.
          pending.sort((a, b) => a.seq - b.seq);
          const e = pending.shift()!;
          if (e.seq <= last) continue;
          if (e.seq > last + 1) {
            await catchUp();
            continue;
          }
          await deliver(e);
        }
      } finally {
        signal.removeEventListener('abort', notify);
        stop.signal.removeEventListener('abort', notify);
        await removeListener(channel, listener);
        running.delete(stop);
        finished();
      }
    },

    /** Ends every follow() and drops this feed's subscriptions; the subscriber connection stays open. */
    async close(): Promise<void> {
      closed = true;
      for (const stop of running.keys()) stop.abort();
      await Promise.all(running.values());
      // Retry unsubscribes that failed earlier.
      await Promise.all([...channels].map(([channel, entry]) => reconcile(channel, entry).catch(() => {})));
      subscriber.off('message', onMessage);
    },
  };
}

export type TaskEventFeed = ReturnType<typeof createTaskEventFeed>;

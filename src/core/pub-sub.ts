import { EventEmitter } from 'node:events';

// The live task event feed's transport. An ioredis connection is both (the subscriber one in subscriber mode); the
// in-process bus below stands in for it when one process does everything.

export interface MessagePublisher {
  /** Resolves with the number of subscribers that received the message. */
  publish(channel: string, message: string): Promise<number>;
}

export type MessageListener = (channel: string, message: string) => void;

export interface MessageSubscriber {
  subscribe(channel: string): Promise<unknown>;
  unsubscribe(channel: string): Promise<unknown>;
  on(event: 'message', listener: MessageListener): unknown;
  off(event: 'message', listener: MessageListener): unknown;
}

/**
 * Pub/sub inside one process, with Redis's semantics: a subscriber gets the messages of its channels published while
 * it is subscribed, in publish order, never synchronously inside publish(); a message published before an
 * unsubscribe is still delivered, none published after it.
 */
export function createMemoryPubSub() {
  const subscribers = new Set<{ channels: Set<string>; emitter: EventEmitter }>();

  const publisher: MessagePublisher = {
    async publish(channel, message) {
      let receivers = 0;
      for (const s of subscribers) {
        if (!s.channels.has(channel)) continue;
        receivers++;
        // Microtasks run in the order queued: publish order is delivery order, as on one Redis connection.
        queueMicrotask(() => s.emitter.emit('message', channel, message));
      }
      return receivers;
    },
  };

  return {
    publisher,
    /** A subscriber of its own, as a dedicated Redis connection would be; disconnect() drops its subscriptions. */
    subscriber(): MessageSubscriber & { disconnect(): void } {
      const s = { channels: new Set<string>(), emitter: new EventEmitter() };
      subscribers.add(s);
      return {
        async subscribe(channel) {
          s.channels.add(channel);
        },
        async unsubscribe(channel) {
          s.channels.delete(channel);
        },
        on(event, listener) {
          s.emitter.on(event, listener);
        },
        off(event, listener) {
          s.emitter.off(event, listener);
        },
        disconnect() {
          s.channels.clear();
          subscribers.delete(s);
        },
      };
    },
  };
}

export type MemoryPubSub = ReturnType<typeof createMemoryPubSub>;

import { timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import type { PGlite } from '@electric-sql/pglite';

// Speaks the Postgres wire protocol on a loopback port in front of one PGlite, so `pg`, kysely and every query of
// the service run unchanged on the embedded database.
//
// PGlite is one backend: every client connection shares its session. Two things must then never interleave, and
// @electric-sql/pglite-socket's per-message queue lets both happen:
//   - an extended-protocol query (Parse, Bind, Describe, Execute … Sync): another connection's Parse in between
//     would replace the unnamed statement the first one is about to Bind;
//   - an explicit transaction (BEGIN … COMMIT/ROLLBACK): another connection's statements would run inside it.
// So one connection at a time owns the backend: from its first message until a Sync or simple Query leaves the
// backend outside a transaction block. Others wait their turn, whole.

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;
const CANCEL_REQUEST = 80877102;
const PROTOCOL_3 = 196608;
const SYNC = 0x53; // 'S'
const QUERY = 0x51; // 'Q'
const TERMINATE = 0x58; // 'X'
const PASSWORD = 0x70; // 'p'
const SYNC_MESSAGE = new Uint8Array([SYNC, 0, 0, 0, 4]);
const MAX_STARTUP_BYTES = 10_000;
const MAX_PASSWORD_MESSAGE_BYTES = 1024;
// AuthenticationCleartextPassword: the client answers with a PasswordMessage. Cleartext is fine on loopback.
const ASK_PASSWORD = new Uint8Array([0x52, 0, 0, 0, 8, 0, 0, 0, 3]);

/** A lock with an owner, handed over in arrival order. */
class BackendTurn {
  private owner: object | undefined;
  private readonly waiting: { who: object; go: () => void }[] = [];

  async take(who: object): Promise<void> {
    if (this.owner === who) return;
    if (this.owner === undefined) {
      this.owner = who;
      return;
    }
    await new Promise<void>((go) => this.waiting.push({ who, go }));
  }

  holds(who: object): boolean {
    return this.owner === who;
  }

  release(who: object): void {
    if (this.owner !== who) return;
    const next = this.waiting.shift();
    this.owner = next?.who;
    next?.go();
  }

  forget(who: object): void {
    const i = this.waiting.findIndex((w) => w.who === who);
    if (i >= 0) this.waiting.splice(i, 1);
  }
}

export interface WireServer {
  host: string;
  port: number;
  stop(): Promise<void>;
}

/**
 * With `password`, a client must give it before its startup reaches PGlite (which has no passwords of its own): the
 * port is on loopback, but other users of the machine can reach loopback too.
 */
export async function startWireServer(db: PGlite, opts: { host?: string; port?: number; password?: string } = {}): Promise<WireServer> {
  const host = opts.host ?? '127.0.0.1';
  const turn = new BackendTurn();
  const sockets = new Set<net.Socket>();

  async function run(who: object, message: Uint8Array, write: (data: Uint8Array) => void): Promise<void> {
    await turn.take(who);
    await db.runExclusive(() => db.execProtocolRawStream(message, { onRawData: write }));
  }

  /** A connection gone mid-turn must not leave its half-run query or open transaction to the next one. */
  async function abandon(who: object): Promise<void> {
    turn.forget(who);
    if (!turn.holds(who)) return;
    try {
      await db.runExclusive(async () => {
        await db.execProtocolRaw(SYNC_MESSAGE);
        if (db.isInTransaction()) await db.execProtocolRaw(simpleQuery('ROLLBACK'));
      });
    } finally {
      turn.release(who);
    }
  }

  function serve(socket: net.Socket): void {
    const who = {};
    sockets.add(socket);
    socket.setNoDelay(true);
    let buffer = Buffer.alloc(0);
    let started = false;
    // The startup message, held back until the password is right.
    let awaitingPassword: Uint8Array | undefined;
    let chain = Promise.resolve();
    // PGlite's answer is a view of its WebAssembly memory, valid only until its next query. A socket that cannot send
    // it at once queues the view itself, so it is copied: else the client later reads bytes of another answer.
    const write = (data: Uint8Array) => {
      if (data.length > 0 && socket.writable) socket.write(Buffer.from(data));
    };
    const closeQuietly = () => void socket.destroy();
    // Messages run one after another, in arrival order; a failure ends the connection (and `abandon` cleans up).
    const enqueue = (step: () => Promise<void>) => {
      chain = chain.then(step).catch(closeQuietly);
    };

    socket.on('data', (chunk) => {
      buffer = Buffer.concat([buffer, chunk]);
      for (;;) {
        if (!started) {
          if (buffer.length < 8) return;
          const length = buffer.readInt32BE(0);
          // Postgres refuses startup packets over 10,000 bytes; a length under 8 would never advance the buffer.
          if (length < 8 || length > MAX_STARTUP_BYTES) return closeQuietly();
          if (buffer.length < length) return;
          const code = buffer.readInt32BE(4);
          const message = buffer.subarray(0, length);
          buffer = buffer.subarray(length);
          if (code === SSL_REQUEST || code === GSSENC_REQUEST) {
            socket.write('N');
            continue;
          }
          if (code === CANCEL_REQUEST || code !== PROTOCOL_3) return closeQuietly();
          started = true;
          if (opts.password !== undefined) {
            awaitingPassword = new Uint8Array(message);
            socket.write(ASK_PASSWORD);
            continue;
          }
          enqueue(async () => {
            await run(who, new Uint8Array(message), write);
            if (!db.isInTransaction()) turn.release(who);
          });
          continue;
        }
        if (buffer.length < 5) return;
        const length = 1 + buffer.readInt32BE(1);
        // A length field under 4 is no message (and would never advance the buffer); before the password, nothing
        // long is expected, so a stranger cannot make this process buffer megabytes.
        if (length < 5 || (awaitingPassword && length > MAX_PASSWORD_MESSAGE_BYTES)) return closeQuietly();
        if (buffer.length < length) return;
        const type = buffer[0];
        const message = new Uint8Array(buffer.subarray(0, length));
        buffer = buffer.subarray(length);
        if (type === TERMINATE) {
          socket.end();
          return;
        }
        if (awaitingPassword) {
          const startup = awaitingPassword;
          awaitingPassword = undefined;
          if (type !== PASSWORD || !samePassword(message.subarray(5), opts.password!)) {
            socket.end(authenticationFailed());
            return;
          }
          enqueue(async () => {
            await run(who, startup, write);
            if (!db.isInTransaction()) turn.release(who);
          });
          continue;
        }
        enqueue(async () => {
          if (socket.destroyed) return;
          await run(who, message, write);
          if ((type === SYNC || type === QUERY) && !db.isInTransaction()) turn.release(who);
        });
      }
    });
    socket.on('error', closeQuietly);
    socket.on('close', () => {
      sockets.delete(socket);
      chain = chain.then(() => abandon(who)).catch(() => undefined);
    });
  }

  const server = net.createServer(serve);
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(opts.port ?? 0, host, resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    host,
    port,
    async stop() {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}

function simpleQuery(text: string): Uint8Array {
  const body = Buffer.from(`${text}\0`, 'utf8');
  const head = Buffer.alloc(5);
  head[0] = QUERY;
  head.writeInt32BE(4 + body.length, 1);
  return new Uint8Array(Buffer.concat([head, body]));
}

/** The PasswordMessage's body is the password and a terminating NUL; compared in constant time. */
function samePassword(body: Uint8Array, password: string): boolean {
  const given = Buffer.from(body[body.length - 1] === 0 ? body.subarray(0, -1) : body);
  const wanted = Buffer.from(password, 'utf8');
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/** ErrorResponse 28P01 (invalid_password), as Postgres answers a wrong password; the connection then closes. */
function authenticationFailed(): Uint8Array {
  const fields = ['SFATAL', 'VFATAL', 'C28P01', 'Mpassword authentication failed'].map((f) => `${f}\0`).join('') + '\0';
  const body = Buffer.from(fields, 'utf8');
  const head = Buffer.alloc(5);
  head[0] = 0x45; // 'E'
  head.writeInt32BE(4 + body.length, 1);
  return new Uint8Array(Buffer.concat([head, body]));
}

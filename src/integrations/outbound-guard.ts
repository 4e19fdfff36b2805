import dns from 'node:dns';
import net from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch, type RequestInit as UndiciRequestInit } from 'undici';
import { TargetNotAllowedError } from '../core/errors.ts';
import { isAddressAllowed, isHostAllowlisted, type OutboundAllowlist } from '../lib/address-rules.ts';

// Every request to a URL a user registered or bound goes through here, so the platform cannot be pointed at
// itself, its private network or a metadata service. `checkUrl` answers early (before anything is stored or
// contacted); the fetch enforces the same rules on the address it actually connects to, so a name that resolves
// to a public address when checked and to 127.0.0.1 when used (DNS rebinding) still fails.

export type ResolveHost = (hostname: string) => Promise<Array<{ address: string; family: number }>>;

/** What the MCP transports and the Space wake need of fetch. */
export type OutboundFetch = (input: string | URL, init?: RequestInit) => Promise<Response>;

export interface OutboundGuard {
  /** Throws TargetNotAllowedError unless the URL is http(s) without credentials and every address of its host is allowed. */
  checkUrl(url: string): Promise<void>;
  /** A fetch that refuses disallowed addresses at connect time and never follows redirects. */
  fetch: OutboundFetch;
  close(): Promise<void>;
}

const defaultResolve: ResolveHost = (hostname) => dns.promises.lookup(hostname, { all: true });

export function createOutboundGuard(opts: { allowlist: OutboundAllowlist; lookup?: ResolveHost }): OutboundGuard {
  const { allowlist } = opts;
  const resolve = opts.lookup ?? defaultResolve;

  const allowed = (hostname: string, port: number, addresses: string[]) =>
    isHostAllowlisted(hostname, port, allowlist) || (addresses.length > 0 && addresses.every((a) => isAddressAllowed(a, allowlist, port)));

  /** net.connect's lookup: resolves, then refuses the connection if any answer is not allowed. */
  const guardedLookup =
    (port: number): net.LookupFunction =>
    (hostname, options, callback) => {
      resolve(hostname).then(
        (answers) => {
          if (answers.length === 0) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
          if (!allowed(hostname, port, answers.map((a) => a.address))) return callback(new TargetNotAllowedError(), '', 0);
          const wanted = options.family === 4 || options.family === 6 ? answers.filter((a) => a.family === options.family) : answers;
          if (wanted.length === 0) return callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 0);
          if (options.all) return callback(null, wanted);
          callback(null, wanted[0]!.address, wanted[0]!.family);
        },
        (err: NodeJS.ErrnoException) => callback(err, '', 0),
      );
    };

  // One undici connector per port, because the lookup must know the port for `host:port` allowlist entries.
  const connectors = new Map<number, buildConnector.connector>();
  const connectorFor = (port: number) => {
    let c = connectors.get(port);
    if (!c) {
      c = buildConnector({ lookup: guardedLookup(port) });
      connectors.set(port, c);
    }
    return c;
  };

  const connect: buildConnector.connector = (options, callback) => {
    const port = Number(options.port) || (options.protocol === 'https:' ? 443 : 80);
    const { hostname } = options;
    // Node skips the lookup for IP literals, so they are judged here, before any packet leaves.
    if (net.isIP(hostname) && !allowed(hostname, port, [hostname])) {
      queueMicrotask(() => callback(new TargetNotAllowedError(), null));
      return;
    }
    connectorFor(port)(options, (err, socket) => {
      if (err || !socket) return callback(err ?? new Error('connection failed'), null);
      // The address really connected to, whatever resolved it.
      if (!allowed(hostname, port, [socket.remoteAddress ?? ''])) {
        socket.destroy();
        return callback(new TargetNotAllowedError(), null);
      }
      callback(null, socket);
    });
  };

  const agent = new Agent({ connect });

  const guardedFetch: OutboundFetch = (input, init) =>
    // Redirects are never followed here: a public URL could otherwise answer 302 to an internal one.
    undiciFetch(input, { ...(init as UndiciRequestInit), redirect: 'manual', dispatcher: agent }) as unknown as Promise<Response>;

  return {
    async checkUrl(raw) {
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        throw new TargetNotAllowedError();
      }
      if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.username !== '' || url.password !== '') {
        throw new TargetNotAllowedError();
      }
      // The WHATWG parser has already turned 2130706433, 0177.0.0.1 and 0x7f.1 into 127.0.0.1.
      const hostname = url.hostname.replace(/^\[|\]$/g, '');
      const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
      if (isHostAllowlisted(hostname, port, allowlist)) return;
      let addresses: string[];
      if (net.isIP(hostname)) {
        addresses = [hostname];
      } else {
        try {
          addresses = (await resolve(hostname)).map((a) => a.address);
        } catch {
          // A name that does not resolve reaches nothing; connecting later resolves and checks again.
          return;
        }
        if (addresses.length === 0) return;
      }
      if (!allowed(hostname, port, addresses)) throw new TargetNotAllowedError();
    },
    fetch: guardedFetch,
    close: () => agent.close(),
  };
}

import ipaddr from 'ipaddr.js';

// Which network addresses the platform may connect to on behalf of a caller. Registered and bound URLs come from
// users, so by default only public unicast addresses are reachable: nothing on this machine, the private network,
// the cloud metadata service or any address that merely wraps one of those.

type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** Operator exceptions, from OUTBOUND_ALLOWLIST. */
export interface OutboundAllowlist {
  /** Any address in these ranges, any port. */
  readonly ranges: ReadonlyArray<readonly [Address, number]>;
  /** `host:port`: a URL with this host (name or IP, as the URL parser writes it) and port, whatever it resolves to. */
  readonly hosts: ReadonlyArray<{ readonly host: string; readonly port: number }>;
}

export const EMPTY_ALLOWLIST: OutboundAllowlist = Object.freeze({ ranges: Object.freeze([]), hosts: Object.freeze([]) });

const HOSTNAME = /^(?=.{1,253}$)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?)*\.?$/i;

/**
 * Parses a comma list of CIDRs (`127.0.0.0/8`, `::1/128`) and `host:port` entries (`mcp.internal:8080`,
 * `10.0.0.5:443`, `[fd00::1]:443`). Throws naming every entry it cannot read.
 */
export function parseAllowlist(raw: string): OutboundAllowlist {
  const ranges: Array<[Address, number]> = [];
  const hosts: Array<{ host: string; port: number }> = [];
  const bad: string[] = [];
  for (const entry of raw.split(',').map((e) => e.trim()).filter((e) => e !== '')) {
    const range = parseRange(entry);
    const host = range ? undefined : parseHostPort(entry);
    if (range) ranges.push(range);
    else if (host) hosts.push(host);
    else bad.push(entry);
  }
  if (bad.length > 0) {
    throw new Error(`not a CIDR (like 127.0.0.0/8 or ::1/128) or host:port: ${bad.map((b) => JSON.stringify(b.slice(0, 100))).join(', ')}`);
  }
  return Object.freeze({ ranges: Object.freeze(ranges), hosts: Object.freeze(hosts) });
}

function parseRange(entry: string): [Address, number] | undefined {
  if (!entry.includes('/')) return undefined;
  const [ip] = entry.split('/');
  // ipaddr.js also reads "127.1" or "0x7f.0.0.1"; an operator's allowlist should say exactly what it means.
  if (ipaddr.IPv4.isIPv4(ip!) && !ipaddr.IPv4.isValidCIDRFourPartDecimal(entry)) return undefined;
  if (!ipaddr.isValidCIDR(entry)) return undefined;
  return ipaddr.parseCIDR(entry);
}

function parseHostPort(entry: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-f:.]+\]|[^:[\]/]+):(\d{1,5})$/i.exec(entry);
  if (!m) return undefined;
  const [, host, portText] = m as unknown as [string, string, string];
  const port = Number(portText);
  if (port < 1 || port > 65535) return undefined;
  if (host.startsWith('[')) {
    if (!ipaddr.IPv6.isValid(host.slice(1, -1))) return undefined;
  } else if (ipaddr.IPv4.isIPv4(host)) {
    if (!ipaddr.IPv4.isValidFourPartDecimal(host)) return undefined;
  } else if (!HOSTNAME.test(host)) {
    return undefined;
  }
  // Written the way the WHATWG URL parser writes a hostname, so matching is a plain comparison.
  return { host: new URL(`http://${host}:${port}/`).hostname.replace(/^\[|\]$/g, ''), port };
}

/** The address as an IPv4 one when it only wraps one (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`). */
function unwrap(ip: string): Address | undefined {
  if (!ipaddr.isValid(ip)) return undefined;
  const addr = ipaddr.process(ip);
  if (addr.kind() === 'ipv4') return addr;
  const v6 = addr as ipaddr.IPv6;
  // ::/96 (deprecated IPv4-compatible) is "unicast" to ipaddr.js; judge it by the IPv4 address it carries.
  const [a, b, c, d, e, f] = v6.parts;
  if (a === 0 && b === 0 && c === 0 && d === 0 && e === 0 && f === 0 && v6.range() === 'unicast') {
    return ipaddr.fromByteArray(v6.toByteArray().slice(12));
  }
  return v6;
}

function inRanges(addr: Address, ranges: OutboundAllowlist['ranges']): boolean {
  return ranges.some(([net, bits]) => net.kind() === addr.kind() && addr.match(net, bits));
}

/**
 * May the platform connect to `ip` (on `port`)? Only public unicast addresses, unless the allowlist names the
 * address's range or the address and port. Anything that is not an IP address is refused.
 */
export function isAddressAllowed(ip: string, allowlist: OutboundAllowlist = EMPTY_ALLOWLIST, port?: number): boolean {
  const bare = ip.replace(/^\[|\]$/g, '');
  const addr = unwrap(bare);
  if (!addr) return false;
  const raw = ipaddr.parse(bare);
  if (inRanges(addr, allowlist.ranges) || inRanges(raw, allowlist.ranges)) return true;
  if (port !== undefined && allowlist.hosts.some((h) => h.port === port && ipaddr.isValid(h.host) && sameAddress(h.host, addr, raw))) return true;
  return addr.range() === 'unicast';
}

function sameAddress(host: string, addr: Address, raw: Address): boolean {
  const entry = unwrap(host);
  if (!entry) return false;
  const same = (x: Address) => x.kind() === entry.kind() && x.toNormalizedString() === entry.toNormalizedString();
  return same(addr) || same(raw);
}

/** Does a `host:port` entry name this URL hostname (as `new URL().hostname` writes it) and port? */
export function isHostAllowlisted(hostname: string, port: number, allowlist: OutboundAllowlist = EMPTY_ALLOWLIST): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return allowlist.hosts.some((h) => h.port === port && h.host === host);
}

import ipaddr from 'ipaddr.js';

/** 127.0.0.0/8, ::1 (and its IPv4-mapped forms) or `localhost`: a host on this machine. */
export function isLoopbackUrl(url: URL): boolean {
  const host = url.hostname.toLowerCase();
  if (host === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (!ipaddr.isValid(bare)) return false;
  return ipaddr.process(bare).range() === 'loopback';
}

import { isIP } from 'node:net';

/** An IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, as dual-stack sockets report) as plain IPv4. */
export function normalizeIp(ip: string | undefined): string {
  if (!ip) return '';
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  return m ? m[1]! : ip;
}

/**
 * A host or address as it goes into a URL, a Host header or `host:port`: IPv6 in brackets
 * (RFC 3986 3.2.2), an IPv4-mapped address as plain IPv4, anything else as it is.
 */
export function hostForUrl(host: string): string {
  const h = normalizeIp(host);
  return h.includes(':') && !h.startsWith('[') ? `[${h}]` : h;
}

/** At most this many X-Forwarded-For entries are looked at (each trusted proxy adds one). */
const MAX_FORWARDED_HOPS = 16;

/**
 * The client's address behind trusted reverse proxies (`--trusted-proxies`): while the address
 * so far is a trusted proxy, the entry it appended to X-Forwarded-For (read from the right) is
 * the one before it. Anything a client wrote into the header itself stays left of what a
 * trusted proxy appended and is never reached. A malformed entry ends the walk at the last
 * address a trusted proxy vouched for.
 */
export function forwardedClient(peer: string | undefined, forwardedFor: string | string[] | undefined, trusted: (ip: string) => boolean): string {
  let client = normalizeIp(peer);
  if (!forwardedFor || !trusted(client)) return client;
  const hops = String(forwardedFor).split(',').slice(-MAX_FORWARDED_HOPS);
  for (let i = hops.length - 1; i >= 0 && trusted(client); i--) {
    const hop = normalizeIp(hops[i]!.trim());
    // No zone ids (fe80::1%eth0) or padding: an address as a proxy writes it, at most 45 characters.
    if (hop.length > 45 || hop.includes('%') || !isIP(hop)) break;
    client = hop;
  }
  return client;
}

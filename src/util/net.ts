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

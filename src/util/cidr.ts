import { BlockList, isIP } from 'node:net';

export interface Cidr {
  text: string;
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** "10.0.0.0/8,192.168.1.5" -> validated networks (a bare address is a /32 or /128). */
export function parseCidrList(text: string): Cidr[] {
  return text.split(',').map((part) => {
    const t = part.trim();
    const parts = t.split('/');
    if (parts.length > 2) throw new Error(`"${t}" is not an IP network`);
    const [address = '', prefixText] = parts;
    const v = isIP(address);
    if (!v) throw new Error(`"${t}" is not an IP network`);
    const max = v === 4 ? 32 : 128;
    const prefix = prefixText === undefined ? max : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > max || (prefixText !== undefined && !/^\d+$/.test(prefixText))) {
      throw new Error(`"${t}" has a bad prefix length`);
    }
    return { text: t, address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
  });
}

/** Whether `ip` (as a socket reports it, IPv4-mapped IPv6 included) is inside any network. */
export function ipAllowed(ip: string, networks: Cidr[]): boolean {
  return networkMatcher(networks)(ip);
}

/** ipAllowed with the networks compiled once, for a check on every request. */
export function networkMatcher(networks: Cidr[]): (ip: string) => boolean {
  const list = new BlockList();
  for (const n of networks) list.addSubnet(n.address, n.prefix, n.family);
  return (ip) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
    const addr = mapped ? mapped[1]! : ip;
    const family = isIP(addr);
    return family !== 0 && list.check(addr, family === 6 ? 'ipv6' : 'ipv4');
  };
}

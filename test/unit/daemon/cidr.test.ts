import { describe, expect, it } from 'vitest';
import { ipAllowed, parseCidrList } from '../../../src/util/cidr.js';

describe('parseCidrList', () => {
  it('parses networks and bare addresses', () => {
    expect(parseCidrList('10.0.0.0/8, 192.168.1.5 ,2001:db8::/32,::1')).toEqual([
      { text: '10.0.0.0/8', address: '10.0.0.0', prefix: 8, family: 'ipv4' },
      { text: '192.168.1.5', address: '192.168.1.5', prefix: 32, family: 'ipv4' },
      { text: '2001:db8::/32', address: '2001:db8::', prefix: 32, family: 'ipv6' },
      { text: '::1', address: '::1', prefix: 128, family: 'ipv6' },
    ]);
    expect(parseCidrList('0.0.0.0/0')[0]!.prefix).toBe(0);
  });

  it('refuses what is not a network', () => {
    for (const bad of ['', 'example.com', '10.0.0.0/33', '::/129', '10.0.0.0/', '10.0.0.0/-1', '10.0.0.0/8/8', '10.0.0.0/8a', '10.0.0.256', '10.0.0.0/ 8', '10.0.0.0/8,']) {
      expect(() => parseCidrList(bad), bad).toThrow();
    }
  });
});

describe('ipAllowed', () => {
  const nets = parseCidrList('10.0.0.0/8,192.168.1.5,2001:db8::/32');
  it('matches addresses inside the networks only', () => {
    expect(ipAllowed('10.1.2.3', nets)).toBe(true);
    expect(ipAllowed('11.0.0.1', nets)).toBe(false);
    expect(ipAllowed('192.168.1.5', nets)).toBe(true);
    expect(ipAllowed('192.168.1.6', nets)).toBe(false);
    expect(ipAllowed('2001:db8::1', nets)).toBe(true);
    expect(ipAllowed('2001:db9::1', nets)).toBe(false);
  });
  it('treats IPv4-mapped IPv6 (as sockets report it) as the IPv4 address', () => {
    expect(ipAllowed('::ffff:10.9.8.7', nets)).toBe(true);
    expect(ipAllowed('::FFFF:127.0.0.1', nets)).toBe(false);
  });
  it('allows nothing with an empty list, everything with /0', () => {
    expect(ipAllowed('10.0.0.1', [])).toBe(false);
    expect(ipAllowed('8.8.8.8', parseCidrList('0.0.0.0/0'))).toBe(true);
  });
});

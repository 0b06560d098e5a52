import { describe, expect, it } from 'vitest';
import { ipAllowed, networkMatcher, parseCidrList } from '../../../src/util/cidr.js';
import { forwardedClient } from '../../../src/util/net.js';

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

describe('forwardedClient (--trusted-proxies)', () => {
  const trusted = networkMatcher(parseCidrList('10.0.0.0/8,::1'));
  const none = networkMatcher([]);

  it('is the socket peer unless that peer is a trusted proxy', () => {
    expect(forwardedClient('198.51.100.9', '203.0.113.7', trusted)).toBe('198.51.100.9');
    expect(forwardedClient('10.0.0.5', '203.0.113.7', none)).toBe('10.0.0.5');
    expect(forwardedClient('::ffff:10.0.0.5', undefined, trusted)).toBe('10.0.0.5');
  });

  it('reads from the right past trusted hops only: what the client wrote itself is never reached', () => {
    // The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    expect(forwardedClient('10.0.0.5', '1.2.3.4, 203.0.113.7', trusted)).toBe('203.0.113.7');
    // Two trusted proxies in a row (edge, then an inner one).
    expect(forwardedClient('::1', '1.2.3.4, 203.0.113.7, 10.1.1.1', trusted)).toBe('203.0.113.7');
    expect(forwardedClient('10.0.0.5', ['203.0.113.7', '10.2.2.2'], trusted)).toBe('203.0.113.7');
    expect(forwardedClient('10.0.0.5', '::ffff:203.0.113.8', trusted)).toBe('203.0.113.8');
  });

  it('stops at a malformed entry at the last address a trusted proxy vouched for', () => {
    expect(forwardedClient('10.0.0.5', 'unknown', trusted)).toBe('10.0.0.5');
    expect(forwardedClient('10.0.0.5', '203.0.113.7, 10.3.3.3:443', trusted)).toBe('10.0.0.5');
    expect(forwardedClient('10.0.0.5', '', trusted)).toBe('10.0.0.5');
    expect(forwardedClient('10.0.0.5', `fe80::1%${'a'.repeat(5000)}`, trusted)).toBe('10.0.0.5');
    // A header of thousands of trusted-looking hops is looked at only 16 deep.
    expect(forwardedClient('10.0.0.5', '203.0.113.7,' + Array(5000).fill('10.0.0.1').join(','), trusted)).toBe('10.0.0.1');
  });
});

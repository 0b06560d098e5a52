import { describe, expect, it } from 'vitest';
import { PLAYOUT_DELAY_EXT_ID, codecParameters, peerConfig, playoutDelayId, resolveHost } from '../../../src/liveview/webrtc/peer-config.js';
import { PLAYOUT_DELAY_URI } from '../../../src/liveview/webrtc/rtp.js';
import { credentialsMatch } from '../../../src/liveview/webrtc/credentials.js';

const h264 = codecParameters('H264', 1280, 720, 30);

describe('peer connection settings', () => {
  it('gathers on the daemon address only, in the port range, with no STUN server by default', () => {
    const c = peerConfig({ host: '127.0.0.1', portRange: { min: 40000, max: 40100 }, iceServers: [] }, h264);
    expect(c.iceServers).toEqual([]); // werift's default is Google's STUN server
    expect(c.iceUseIpv4).toBe(false);
    expect(c.iceUseIpv6).toBe(false);
    expect(c.iceAdditionalHostAddresses).toEqual(['127.0.0.1']);
    expect(c.iceInterfaceAddresses).toEqual({ udp4: '127.0.0.1' });
    expect(c.icePortRange).toEqual([40000, 40100]);
    expect(c.bundlePolicy).toBe('max-bundle');
    expect(c.codecs?.video).toEqual([h264]);
    expect(c.headerExtensions?.video?.map((e) => [e.id, e.uri])).toEqual([[PLAYOUT_DELAY_EXT_ID, PLAYOUT_DELAY_URI]]);
  });

  it('binds IPv6 sockets for an IPv6 address; the wildcard means every interface', () => {
    expect(peerConfig({ host: 'fd00::2', portRange: null, iceServers: [] }, h264).iceInterfaceAddresses).toEqual({ udp6: 'fd00::2' });
    const any = peerConfig({ host: '0.0.0.0', portRange: null, iceServers: [] }, h264);
    expect(any).toMatchObject({ iceUseIpv4: true, iceUseIpv6: false, icePortRange: undefined });
    expect(any.iceInterfaceAddresses).toBeUndefined();
  });

  it('passes configured STUN/TURN servers through', () => {
    const servers = [{ urls: 'stun:stun.lan:3478' }, { urls: 'turn:turn.lan:3478?transport=udp', username: 'u', credential: 'c' }];
    expect(peerConfig({ host: '10.0.0.1', portRange: null, iceServers: servers }, h264).iceServers).toEqual(servers);
  });

  it('offers H.264 constrained baseline in packetization mode 1 with NACK, PLI and FIR', () => {
    expect(h264.mimeType).toBe('video/H264');
    expect(h264.parameters).toBe('level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f');
    expect(h264.rtcpFeedback).toEqual([{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }]);
    expect(codecParameters('VP8', 640, 360, 30).mimeType).toBe('video/VP8');
  });

  it('reads the accepted playout-delay id from an answer', () => {
    expect(playoutDelayId(`v=0\r\na=extmap:6 ${PLAYOUT_DELAY_URI}\r\na=mid:0\r\n`)).toBe(6);
    expect(playoutDelayId(`a=extmap:9/recvonly ${PLAYOUT_DELAY_URI}\n`)).toBe(9);
    expect(playoutDelayId('v=0\r\na=extmap:3 urn:ietf:params:rtp-hdrext:sdes:mid\r\n')).toBeNull();
  });

  it('resolves names once and keeps addresses', async () => {
    expect(await resolveHost('192.0.2.7')).toBe('192.0.2.7');
    expect(await resolveHost('localhost')).toBe('127.0.0.1');
  });
});

describe('credentials', () => {
  it('accepts anything when the session set none', () => {
    expect(credentialsMatch({ username: null, password: '' }, null, null)).toBe(true);
    expect(credentialsMatch({ username: null, password: '' }, 'x', 'y')).toBe(true);
  });

  it('checks the password, and the username when one is set', () => {
    const pw = { username: null, password: 'secret-pw' };
    expect(credentialsMatch(pw, null, 'secret-pw')).toBe(true);
    expect(credentialsMatch(pw, 'anyone', 'secret-pw')).toBe(true);
    expect(credentialsMatch(pw, null, 'secret-p')).toBe(false);
    expect(credentialsMatch(pw, null, null)).toBe(false);
    const both = { username: 'alice', password: 'secret-pw' };
    expect(credentialsMatch(both, 'alice', 'secret-pw')).toBe(true);
    expect(credentialsMatch(both, 'bob', 'secret-pw')).toBe(false);
    expect(credentialsMatch(both, null, 'secret-pw')).toBe(false);
    expect(credentialsMatch(both, 'alice', 'wrong')).toBe(false);
  });
});

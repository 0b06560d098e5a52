import { describe, expect, it } from 'vitest';
import { hostAllowed, hostName, isCorsPath, isSimpleBodyType, originAllowed, preflightHeaders, verdict, type GuardPolicy } from '../../../src/http/guard.js';

const loop: GuardPolicy = { bindHost: '127.0.0.1', allowedOrigins: [], publicUrl: null };
const proxied: GuardPolicy = { bindHost: '127.0.0.1', allowedOrigins: ['https://ops.example.com'], publicUrl: new URL('https://handoff.example.com') };
const lan: GuardPolicy = { bindHost: '0.0.0.0', allowedOrigins: [], publicUrl: null };

describe('hostName', () => {
  it('takes the name of host[:port], lower-cased, IPv6 in brackets', () => {
    expect(hostName('LocalHost:9222')).toBe('localhost');
    expect(hostName('[::1]:9222')).toBe('[::1]');
    expect(hostName('127.0.0.1')).toBe('127.0.0.1');
    for (const bad of ['', 'a b', 'evil.example:80:80', 'x@y', '[::1', 'host:port']) expect(hostName(bad)).toBeNull();
  });
});

describe('Host check (DNS rebinding)', () => {
  it('on loopback admits only loopback names, --host and the public URL host, any port', () => {
    for (const h of ['localhost', 'localhost:9222', '127.0.0.1:1', '[::1]:9222', 'LOCALHOST:80']) expect(hostAllowed(loop, h)).toBe(true);
    for (const h of ['evil.example', 'evil.example:9222', '127.0.0.2:9222', '0.0.0.0:9222', 'localhost.', '127.0.0.1.nip.io']) expect(hostAllowed(loop, h)).toBe(false);
    expect(hostAllowed(proxied, 'handoff.example.com')).toBe(true);
    expect(hostAllowed({ ...loop, bindHost: '127.0.0.2' }, '127.0.0.2:9222')).toBe(true);
    expect(hostAllowed({ ...loop, bindHost: '::1' }, '[::1]:9222')).toBe(true);
  });
  it('a request without Host (not a browser) passes; off loopback every Host passes', () => {
    expect(hostAllowed(loop, undefined)).toBe(true);
    expect(hostAllowed(lan, 'anything.example')).toBe(true);
  });
});

describe('Origin policy', () => {
  it('admits no Origin, the daemon\'s own origin and --allowed-origins', () => {
    expect(originAllowed(loop, undefined, 'evil.example')).toBe(true);
    expect(originAllowed(loop, 'http://127.0.0.1:9222', '127.0.0.1:9222')).toBe(true);
    expect(originAllowed(loop, 'http://localhost:9222', 'localhost:9222')).toBe(true);
    expect(originAllowed(loop, 'http://[::1]:9222', '[::1]:9222')).toBe(true);
    expect(originAllowed(proxied, 'https://ops.example.com', '127.0.0.1:9222')).toBe(true);
    expect(originAllowed(proxied, 'https://handoff.example.com', 'handoff.example.com')).toBe(true);
    expect(originAllowed(proxied, 'https://handoff.example.com', '127.0.0.1:9222')).toBe(true);
  });
  it('refuses other sites, other ports of the same host, null, and rebinding names', () => {
    expect(originAllowed(loop, 'https://evil.example', '127.0.0.1:9222')).toBe(false);
    expect(originAllowed(loop, 'http://127.0.0.1:3000', '127.0.0.1:9222')).toBe(false);
    expect(originAllowed(loop, 'http://localhost:9222', '127.0.0.1:9222')).toBe(false);
    expect(originAllowed(loop, 'null', '127.0.0.1:9222')).toBe(false);
    expect(originAllowed(loop, 'http://evil.example:9222', 'evil.example:9222')).toBe(false);
    expect(originAllowed(proxied, 'https://ops.example.com.evil', '127.0.0.1:9222')).toBe(false);
    expect(originAllowed(loop, 'http://127.0.0.1:9222', undefined)).toBe(false);
  });
  it('off loopback the own origins are the names the daemon is reached at, not any Host', () => {
    expect(originAllowed(lan, 'http://192.168.1.5:9222', '192.168.1.5:9222', '192.168.1.5')).toBe(true);
    expect(originAllowed(lan, 'http://192.168.1.5:9222', '192.168.1.5:9222', '::ffff:192.168.1.5')).toBe(true);
    expect(originAllowed(lan, 'http://evil.example:9222', 'evil.example:9222', '192.168.1.5')).toBe(false);
  });
});

describe('verdict', () => {
  const evil = { origin: 'https://evil.example', host: '127.0.0.1:9222' };
  it('refuses a page\'s no-cors reads by their fetch metadata (no Origin on them); navigations and Node clients pass', () => {
    const req = { method: 'GET', path: '/session/x/live', upgrade: false, host: '127.0.0.1:9222' };
    for (const site of ['cross-site', 'same-site']) {
      for (const mode of ['no-cors', 'cors']) expect(verdict(loop, { ...req, fetchSite: site, fetchMode: mode })).toBe('forbidden_origin');
      expect(verdict(loop, { ...req, fetchSite: site, fetchMode: 'navigate' })).toBe('ok');
    }
    expect(verdict(loop, { ...req, fetchSite: 'same-origin', fetchMode: 'cors' })).toBe('ok');
    expect(verdict(loop, { ...req, fetchSite: 'none', fetchMode: 'navigate' })).toBe('ok');
    expect(verdict(loop, req)).toBe('ok');
    // The live view and the kit's files are for any site; an allowed origin's CORS reads pass.
    expect(verdict(loop, { ...req, path: '/live/T/info', fetchSite: 'cross-site', fetchMode: 'cors' })).toBe('ok');
    expect(verdict(loop, { ...req, path: '/hitl-kit.js', fetchSite: 'cross-site', fetchMode: 'no-cors' })).toBe('ok');
    expect(verdict(proxied, { ...req, host: 'handoff.example.com', origin: 'https://ops.example.com', fetchSite: 'cross-site', fetchMode: 'cors' })).toBe('ok');
  });

  it('checks Host first (except /health), then Origin on every request outside /live/, the kit files and /health', () => {
    expect(verdict(loop, { method: 'GET', path: '/sessions', upgrade: false, host: 'evil.example' })).toBe('forbidden_host');
    expect(verdict(loop, { method: 'GET', path: '/health', upgrade: false, host: 'evil.example' })).toBe('ok');
    expect(verdict(loop, { method: 'GET', path: '/live/T/screencast', upgrade: true, host: 'evil.example' })).toBe('forbidden_host');
    expect(verdict(loop, { method: 'GET', path: '/', upgrade: true, ...evil })).toBe('forbidden_origin');
    for (const m of ['POST', 'PUT', 'DELETE', 'PATCH']) expect(verdict(loop, { method: m, path: '/session/x/stop', upgrade: false, ...evil })).toBe('forbidden_origin');
    // Reads too: a foreign page must not read API answers (CORS-mode GET, HEAD, OPTIONS).
    for (const m of ['GET', 'HEAD', 'OPTIONS']) expect(verdict(loop, { method: m, path: '/sessions', upgrade: false, ...evil })).toBe('forbidden_origin');
    for (const p of ['/', '/json/version', '/session/x/downloads/f.pdf', '/session/x/live']) expect(verdict(loop, { method: 'GET', path: p, upgrade: false, ...evil })).toBe('forbidden_origin');
    expect(verdict(loop, { method: 'GET', path: '/sessions', upgrade: false, origin: 'null', host: '127.0.0.1:9222' })).toBe('forbidden_origin');
    // The daemon's own pages, allowed origins and clients without Origin still read.
    expect(verdict(loop, { method: 'GET', path: '/sessions', upgrade: false, host: '127.0.0.1:9222' })).toBe('ok');
    expect(verdict(loop, { method: 'GET', path: '/sessions', upgrade: false, origin: 'http://127.0.0.1:9222', host: '127.0.0.1:9222' })).toBe('ok');
    expect(verdict(proxied, { method: 'GET', path: '/sessions', upgrade: false, origin: 'https://ops.example.com', host: 'handoff.example.com' })).toBe('ok');
    // What any page may load: the kit's files and /health (reads only).
    for (const p of ['/hitl-kit.js', '/assets/kit-webrtc.js', '/assets/novnc/core/rfb.js', '/health', '/live/T', '/live/T/info']) {
      expect(verdict(loop, { method: 'GET', path: p, upgrade: false, ...evil })).toBe('ok');
    }
    expect(verdict(loop, { method: 'POST', path: '/health', upgrade: false, ...evil })).toBe('forbidden_origin');
    expect(verdict(loop, { method: 'POST', path: '/live/T/handoff', upgrade: false, ...evil })).toBe('ok');
    expect(verdict(loop, { method: 'GET', path: '/live/T/vnc', upgrade: true, ...evil })).toBe('ok');
    expect(verdict(loop, { method: 'GET', path: '/devtools/browser/x', upgrade: true, host: '127.0.0.1:9222' })).toBe('ok');
  });
});

describe('CORS', () => {
  it('applies to the live view and the kit files only', () => {
    for (const p of ['/live/T', '/live/T/info', '/hitl-kit.js', '/assets/kit-webrtc.js', '/assets/novnc/core/rfb.js']) expect(isCorsPath(p)).toBe(true);
    for (const p of ['/', '/live', '/sessions', '/session/x/live', '/json/version', '/hitl-kit.jsx']) expect(isCorsPath(p)).toBe(false);
  });
  it('answers a preflight with the kit\'s methods and header, without credentials', () => {
    const h = preflightHeaders({ 'access-control-request-method': 'POST' });
    expect(h['access-control-allow-origin']).toBe('*');
    expect(h['access-control-allow-methods']).toContain('POST');
    expect(h['access-control-allow-headers']).toBe('content-type');
    expect(h).not.toHaveProperty('access-control-allow-credentials');
    expect(h).not.toHaveProperty('access-control-allow-private-network');
    expect(preflightHeaders({ 'access-control-request-private-network': 'true' })['access-control-allow-private-network']).toBe('true');
  });
  it('knows the body types a page may send without a preflight', () => {
    for (const t of ['text/plain', 'text/plain;charset=UTF-8', 'application/x-www-form-urlencoded', 'Multipart/Form-Data; boundary=x']) expect(isSimpleBodyType(t)).toBe(true);
    for (const t of [undefined, 'application/json', 'application/octet-stream']) expect(isSimpleBodyType(t)).toBe(false);
  });
});

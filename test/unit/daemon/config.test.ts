import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

const noFile = (): string => {
  throw new Error('no file expected');
};
const files = (map: Record<string, unknown>) => (path: string) => {
  if (!(path in map)) throw new Error(`ENOENT: ${path}`);
  return typeof map[path] === 'string' ? (map[path] as string) : JSON.stringify(map[path]);
};

describe('loadConfig', () => {
  it('has the documented defaults (API.md 1)', () => {
    const c = loadConfig([], { HOME: '/home/u' }, noFile);
    expect(c).toMatchObject({ host: '127.0.0.1', port: 9222, vncPort: 5901, maxSessions: 8, apiKey: null, rtcPorts: null, logLevel: 'info' });
    expect(c.stateDir).toBe('/home/u/.local/state/handoff');
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('takes the state dir from systemd, then XDG_STATE_HOME, unless given', () => {
    expect(loadConfig([], { STATE_DIRECTORY: '/var/lib/handoff:/other', XDG_STATE_HOME: '/x' }).stateDir).toBe('/var/lib/handoff');
    expect(loadConfig([], { XDG_STATE_HOME: '/x' }).stateDir).toBe('/x/handoff');
    expect(loadConfig(['--state-dir', '/s'], { STATE_DIRECTORY: '/var/lib/handoff' }).stateDir).toBe('/s');
  });

  it('flag beats env beats config file beats default', () => {
    const read = files({ '/etc/h.json': { port: 1111, 'max-sessions': 3, 'log-level': 'warn' } });
    const env = { HANDOFF_CONFIG: '/etc/h.json', HANDOFF_PORT: '2222' };
    expect(loadConfig(['--port', '3333'], env, read).port).toBe(3333);
    expect(loadConfig(['--port=3334'], env, read).port).toBe(3334);
    expect(loadConfig([], env, read).port).toBe(2222);
    expect(loadConfig([], { HANDOFF_CONFIG: '/etc/h.json' }, read).port).toBe(1111);
    expect(loadConfig([], { HANDOFF_CONFIG: '/etc/h.json' }, read).maxSessions).toBe(3);
    expect(loadConfig(['--log-level', 'debug'], { HANDOFF_CONFIG: '/etc/h.json', HANDOFF_LOG_LEVEL: 'error' }, read).logLevel).toBe('debug');
    expect(loadConfig([], { HANDOFF_CONFIG: '/etc/h.json', HANDOFF_LOG_LEVEL: 'error' }, read).logLevel).toBe('error');
    expect(loadConfig([], { HANDOFF_CONFIG: '/etc/h.json' }, read).logLevel).toBe('warn');
    // --config itself beats HANDOFF_CONFIG.
    const two = files({ '/a.json': { port: 1 }, '/b.json': { port: 2 } });
    expect(loadConfig(['--config', '/b.json'], { HANDOFF_CONFIG: '/a.json' }, two).port).toBe(2);
  });

  it('off loopback an API key is required, from any source', () => {
    expect(() => loadConfig(['--host', '0.0.0.0'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--host', '0.0.0.0'], {})).toThrow(/--api-key/);
    expect(() => loadConfig(['--host', '192.168.1.10', '--api-key', ''], {})).toThrow(/--api-key/);
    expect(() => loadConfig([], { HANDOFF_HOST: '::' })).toThrow(/--api-key/);
    expect(loadConfig(['--host', '0.0.0.0', '--api-key', 'k'], {}).apiKey).toBe('k');
    expect(loadConfig(['--host', '0.0.0.0'], { HANDOFF_API_KEY: 'envkey' }).apiKey).toBe('envkey');
    expect(loadConfig(['--host', '0.0.0.0', '--config', '/c.json'], {}, files({ '/c.json': { 'api-key': 'filekey' } })).apiKey).toBe('filekey');
    for (const host of ['127.0.0.1', '127.0.0.2', '::1', 'localhost']) expect(loadConfig(['--host', host], {}).apiKey).toBeNull();
  });

  it('a public URL off loopback requires an API key (behind a proxy every request looks local)', () => {
    expect(() => loadConfig(['--public-url', 'https://handoff.example.com'], {})).toThrow(ConfigError);
    expect(() => loadConfig(['--public-url', 'https://handoff.example.com'], {})).toThrow(/--public-url.*--api-key/);
    expect(() => loadConfig([], { HANDOFF_PUBLIC_URL: 'http://10.0.0.5:8080' })).toThrow(/--api-key/);
    expect(() => loadConfig(['--public-url', 'https://[2001:db8::1]', '--api-key', ''], {})).toThrow(/--api-key/);
    expect(loadConfig(['--public-url', 'https://handoff.example.com', '--api-key', 'k'], {}).publicUrl?.host).toBe('handoff.example.com');
    expect(loadConfig(['--public-url', 'https://handoff.example.com'], { HANDOFF_API_KEY: 'k' }).apiKey).toBe('k');
    for (const url of ['http://localhost:9222', 'http://127.0.0.1:8080', 'http://[::1]:9222']) expect(loadConfig(['--public-url', url], {}).publicUrl?.origin).toBe(url);
  });

  it('refuses bad values with a message naming the option', () => {
    const cases: [string[], RegExp][] = [
      [['--port', '70000'], /--port/],
      [['--port', 'abc'], /--port/],
      [['--port', '-1'], /--port/],
      [['--vnc-port', '1.5'], /--vnc-port/],
      [['--max-sessions', '0'], /--max-sessions/],
      [['--max-sessions', '1000'], /--max-sessions/],
      [['--log-level', 'loud'], /--log-level/],
      [['--rtc-ports', '40100-40000'], /--rtc-ports/],
      [['--rtc-ports', '40000'], /--rtc-ports/],
      [['--host', 'example.com'], /--host/],
      [['--live-link-ttl', '10'], /--live-link-ttl/],
      [['--trusted-proxies', 'haproxy.local'], /--trusted-proxies/],
      [['--trusted-proxies', '10.0.0.1,0.0.0.0/0'], /0\.0\.0\.0\/0 is wider than \/8/],
      [['--trusted-proxies', '::/0'], /--trusted-proxies/],
      [['--nope', '1'], /--nope/],
      [['--port'], /--port needs a value/],
      [['serve'], /unexpected argument/],
    ];
    for (const [argv, message] of cases) {
      expect(() => loadConfig(argv, {}), argv.join(' ')).toThrow(ConfigError);
      expect(() => loadConfig(argv, {}), argv.join(' ')).toThrow(message);
    }
    expect(() => loadConfig([], { HANDOFF_PORT: 'x' })).toThrow(/--port/);
    expect(() => loadConfig(['--config', '/bad.json'], {}, files({ '/bad.json': '{not json' }))).toThrow(/config file \/bad\.json/);
    expect(() => loadConfig(['--config', '/missing.json'], {}, files({}))).toThrow(/config file \/missing\.json/);
  });

  it('parses ranges and numbers', () => {
    const c = loadConfig(['--rtc-ports', '40000-40100', '--vnc-port', '0', '--port', '0', '--live-link-ttl', '60'], {});
    expect(c.rtcPorts).toEqual({ min: 40000, max: 40100 });
    expect(c.vncPort).toBe(0);
    expect(c.port).toBe(0);
    expect(c.liveLinkTtlMs).toBe(60_000);
    expect(loadConfig([], {}).trustedProxies).toEqual([]);
    expect(loadConfig([], { HANDOFF_TRUSTED_PROXIES: '10.0.0.0/8,::1' }).trustedProxies.map((n) => n.text)).toEqual(['10.0.0.0/8', '::1']);
  });
});

import { describe, expect, it } from 'vitest';
import { allowedOriginCors, type GuardPolicy } from '../../../src/http/guard.js';
import { ConfigError, loadConfig } from '../../../src/config/config.js';

/** Issue 16: a dashboard on host A reads host B when B lists A in --allowed-origins. */
const policy: GuardPolicy = { bindHost: '10.0.0.22', allowedOrigins: ['https://h1.example'], publicUrl: new URL('https://h2.example') };

describe('CORS for --allowed-origins (a peer host\'s dashboard)', () => {
  it('names the allowed origin, varies on Origin, and answers its preflight with the Authorization header', () => {
    expect(allowedOriginCors(policy, 'https://h1.example', false)).toEqual({ 'access-control-allow-origin': 'https://h1.example', vary: 'Origin' });
    const pre = allowedOriginCors(policy, 'https://h1.example', true)!;
    expect(pre['access-control-allow-headers']).toContain('authorization');
    expect(pre['access-control-allow-methods']).toContain('POST');
    expect(pre).not.toHaveProperty('access-control-allow-credentials');
  });

  it('gives nothing to any other origin, to no Origin, or to a near miss', () => {
    for (const o of [undefined, 'https://evil.example', 'https://h1.example.evil.example', 'http://h1.example', 'https://h1.example:444', 'null']) {
      expect(allowedOriginCors(policy, o, true)).toBeNull();
    }
  });
});

describe('--peer', () => {
  it('takes comma separated origins, from the flag or HANDOFF_PEER; none by default', () => {
    expect(loadConfig([], {}).peers).toEqual([]);
    expect(loadConfig(['--peer', 'http://10.0.0.22:9222, https://h3.example'], {}).peers).toEqual(['http://10.0.0.22:9222', 'https://h3.example']);
    expect(loadConfig([], { HANDOFF_PEER: 'http://h2.example:9222' }).peers).toEqual(['http://h2.example:9222']);
  });

  it('refuses what is not an http(s) origin, naming --peer', () => {
    for (const bad of ['h2.example', 'ftp://h2.example', 'http://h2.example/dash', 'javascript:alert(1)']) {
      expect(() => loadConfig(['--peer', bad], {})).toThrow(ConfigError);
      expect(() => loadConfig(['--peer', bad], {})).toThrow(/--peer/);
    }
  });
});

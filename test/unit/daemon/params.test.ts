import { describe, expect, it } from 'vitest';
import { parseAutoClose, parseSessionParams, sessionDir, validSessionId, int } from '../../../src/sessions/params.js';
import { HandoffError } from '../../../src/util/errors.js';

const q = (s: string) => new URLSearchParams(s);

function badRequest(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(HandoffError);
    expect((e as HandoffError).code).toBe('bad_request');
    return (e as Error).message;
  }
  throw new Error('expected a bad_request');
}

describe('parseSessionParams', () => {
  it('has the API.md 3.1 defaults and ignores unknown parameters', () => {
    expect(parseSessionParams(q('session=x&whatever=1'))).toEqual({
      width: 1280,
      height: 720,
      timeoutS: 900,
      enableVnc: false,
      vncPassword: null,
      enableRtc: false,
      rtcUsername: null,
      rtcPassword: null,
      debug: false,
      hitlAllowedNetworks: null,
      debugPort: false,
      profile: null,
    });
  });

  it('reads every parameter', () => {
    const p = parseSessionParams(
      q('width=1024&height=768&timeout=3600&enable_vnc=true&vnc_password=12345678&enable_rtc=1&rtc_username=u&rtc_password=p&debug=true&hitl_allowed_networks=10.0.0.0/8,::1'),
    );
    expect(p).toMatchObject({ width: 1024, height: 768, timeoutS: 3600, enableVnc: true, vncPassword: '12345678', enableRtc: true, rtcUsername: 'u', rtcPassword: 'p', debug: true });
    expect(p.hitlAllowedNetworks!.map((n) => n.text)).toEqual(['10.0.0.0/8', '::1']);
  });

  it('drops passwords of transports that are off', () => {
    expect(parseSessionParams(q('vnc_password=12345678&rtc_password=x'))).toMatchObject({ vncPassword: null, rtcPassword: null });
  });

  it('refuses out of range, malformed and oversize values', () => {
    for (const s of [
      'width=319',
      'width=3841',
      'width=12.5',
      'width=1e3',
      'width=-800',
      'height=239',
      'height=2161',
      'timeout=0',
      'timeout=3601',
      'enable_vnc=yes',
      'debug=maybe',
      'enable_vnc=true',
      'enable_vnc=true&vnc_password=1234567',
      'enable_rtc=true',
      'hitl_allowed_networks=10.0.0.0/33',
      'hitl_allowed_networks=nonsense',
      `x=${'a'.repeat(1025)}`,
    ]) {
      badRequest(() => parseSessionParams(q(s)));
    }
    expect(parseSessionParams(q(`x=${'a'.repeat(1024)}`)).width).toBe(1280);
  });

  it('an override of the timeout (keep_alive) still refuses a bad timeout value', () => {
    expect(parseSessionParams(q('timeout=60'), { timeoutS: 600 }).timeoutS).toBe(600);
    badRequest(() => parseSessionParams(q('timeout=99999'), { timeoutS: 600 }));
  });
});

describe('parseAutoClose', () => {
  it('reads true/false/1/0, else the fallback; anything else is a bad request', () => {
    expect(parseAutoClose(q(''), true)).toBe(true);
    expect(parseAutoClose(q('auto_close='), false)).toBe(false);
    expect(parseAutoClose(q('auto_close=false'), true)).toBe(false);
    expect(parseAutoClose(q('auto_close=0'), true)).toBe(false);
    expect(parseAutoClose(q('auto_close=true'), false)).toBe(true);
    expect(parseAutoClose(q('auto_close=1'), false)).toBe(true);
    badRequest(() => parseAutoClose(q('auto_close=TRUE'), false));
  });
});

describe('validSessionId', () => {
  it('accepts [A-Za-z0-9._-]{1,128}', () => {
    for (const id of ['a', 'A.b_c-9', 'x'.repeat(128), '.a', 'a..', '..a.', '0']) expect(validSessionId(id)).toBe(id);
  });
  it('refuses anything else', () => {
    for (const id of ['', 'x'.repeat(129), 'a/b', 'a\\b', 'a b', 'é', 'a%2Fb', 'a\0', 'a\nb', 'a?b']) badRequest(() => validSessionId(id));
  });
  it('refuses ids that are only dots: no id names the current or a parent directory', () => {
    for (const id of ['.', '..', '...', '.'.repeat(128)]) badRequest(() => validSessionId(id));
  });
});

describe('sessionDir', () => {
  it('is a child of the root for every valid id and refuses the rest', () => {
    expect(sessionDir('/state/downloads', 'abc')).toBe('/state/downloads/abc');
    expect(sessionDir('/state/downloads', '.a')).toBe('/state/downloads/.a');
    for (const id of ['.', '..', '../x', 'a/../..', '', '/etc']) badRequest(() => sessionDir('/state/downloads', id));
  });
});

describe('int', () => {
  it('only plain non-negative integers within range', () => {
    expect(int(q('n=5'), 'n', 1, 0, 10)).toBe(5);
    expect(int(q(''), 'n', 7, 0, 10)).toBe(7);
    for (const v of ['11', '-1', '1.0', '0x5', ' 5', 'five']) badRequest(() => int(q(`n=${encodeURIComponent(v)}`), 'n', 1, 0, 10));
  });
});

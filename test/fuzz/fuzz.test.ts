/**
 * The fuzz smoke of `npm test` (the long runs are `npm run fuzz`): a second and a half of the
 * mutation loop per target, fast-check properties for the structure-aware side, and one test
 * per finding of the long runs.
 */
import { PassThrough } from 'node:stream';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fuzz } from './engine.js';
import { TARGETS } from './targets.js';
import { RfbParser, MAX_ENCODINGS, type ClientMsg } from '../../src/liveview/vnc/parser.js';
import { parseViewerMessage } from '../../src/liveview/screencast/protocol.js';
import { encodeInput, parseInput, parseSignal } from '../../src/liveview/webrtc/protocol.js';
import { ProtocolError } from '../../src/liveview/viewer-socket.js';
import { NulSplitter, type PipeMessage } from '../../src/cdp/pipe-message.js';
import { CdpPipeMux, CdpCommandError } from '../../src/cdp/pipe-mux.js';
import { parseSessionParams } from '../../src/sessions/params.js';
import { LiveLinkSigner, type LiveLink } from '../../src/liveview/tokens.js';
import { HandoffError } from '../../src/util/errors.js';

describe('mutation loop smoke (npm run fuzz runs 1,000,000 inputs per target)', () => {
  for (const t of TARGETS) {
    it(t.name, async () => {
      const r = await fuzz(t, { inputs: 1e9, maxMs: 1500, seed: Date.now() & 0xffff });
      expect(r.findings).toEqual([]);
      expect(r.inputs).toBeGreaterThan(t.seeds.length);
    });
  }
});

/** Splits `b` at the given cut points (fast-check picks them). */
function split(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(b.subarray(from, c));
    from = c;
  }
  out.push(b.subarray(from));
  return out;
}

const u16 = fc.integer({ min: 0, max: 0xffff });
const rfbMessage = fc.oneof(
  fc.record({ type: fc.constant('key' as const), down: fc.boolean(), keysym: fc.integer({ min: 0, max: 0xffffffff }) }),
  fc.record({ type: fc.constant('pointer' as const), buttonMask: fc.integer({ min: 0, max: 255 }), x: u16, y: u16 }),
  fc.record({ type: fc.constant('setEncodings' as const), encodings: fc.array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { maxLength: 40 }) }),
  fc.record({ type: fc.constant('updateRequest' as const), incremental: fc.boolean(), rect: fc.record({ x: u16, y: u16, width: u16, height: u16 }) }),
  fc.record({ type: fc.constant('cutText' as const), text: fc.string({ maxLength: 200, unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)) }) }),
);
type RfbIn = typeof rfbMessage extends fc.Arbitrary<infer T> ? T : never;

function encodeRfb(m: RfbIn): Buffer {
  switch (m.type) {
    case 'key': {
      const b = Buffer.alloc(8);
      b[0] = 4;
      b[1] = m.down ? 1 : 0;
      b.writeUInt32BE(m.keysym, 4);
      return b;
    }
    case 'pointer':
      return Buffer.from([5, m.buttonMask, m.x >> 8, m.x & 255, m.y >> 8, m.y & 255]);
    case 'setEncodings': {
      const b = Buffer.alloc(4 + 4 * m.encodings.length);
      b[0] = 2;
      b.writeUInt16BE(m.encodings.length, 2);
      m.encodings.forEach((e, i) => b.writeInt32BE(e, 4 + 4 * i));
      return b;
    }
    case 'updateRequest': {
      const b = Buffer.alloc(10);
      b[0] = 3;
      b[1] = m.incremental ? 1 : 0;
      [m.rect.x, m.rect.y, m.rect.width, m.rect.height].forEach((v, i) => b.writeUInt16BE(v, 2 + 2 * i));
      return b;
    }
    case 'cutText': {
      const t = Buffer.from(m.text, 'latin1');
      const b = Buffer.alloc(8);
      b[0] = 6;
      b.writeUInt32BE(t.length, 4);
      return Buffer.concat([b, t]);
    }
  }
}

describe('fast-check properties', () => {
  it('RFB: any valid session, split anywhere, parses to exactly what was sent', () => {
    fc.assert(
      fc.property(fc.array(rfbMessage, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 20 }), (msgs, cuts) => {
        const handshake = Buffer.concat([Buffer.from('RFB 003.008\n'), Buffer.from([2]), Buffer.alloc(16, 9), Buffer.from([1])]);
        const wire = Buffer.concat([handshake, ...msgs.map(encodeRfb)]);
        const got: ClientMsg[] = [];
        let error: string | null = null;
        const p = new RfbParser((m) => got.push(m), (r) => (error = r));
        for (const c of split(wire, cuts)) p.push(c);
        expect(error).toBeNull();
        expect(got.slice(4)).toEqual(msgs);
      }),
      { numRuns: 300 },
    );
  });

  it('RFB: a SetEncodings over the cap fails without waiting for its body', () => {
    const errors: string[] = [];
    const p = new RfbParser(() => {}, (r) => errors.push(r));
    p.push(Buffer.concat([Buffer.from('RFB 003.003\n'), Buffer.alloc(16), Buffer.from([1, 2, 0, (MAX_ENCODINGS + 1) >> 8, (MAX_ENCODINGS + 1) & 255])]));
    expect(errors).toEqual([`SetEncodings with ${MAX_ENCODINGS + 1} encodings`]);
  });

  it('viewer sockets: any JSON value is a message or a ProtocolError, never another throw', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('ack', 'pointer', 'wheel', 'key', 'paste', 'quality', 'handoff', 'hello', 'answer', 'candidate'), (v, type) => {
        for (const value of [v, typeof v === 'object' && v && !Array.isArray(v) ? { ...v, type } : { type, x: v, seq: v, text: v, codecs: v, sdp: v }]) {
          const data = Buffer.from(JSON.stringify(value));
          for (const parse of [parseViewerMessage, parseSignal]) {
            try {
              parse(data, false);
            } catch (e) {
              expect(e).toBeInstanceOf(ProtocolError);
            }
          }
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('WebRTC input: every encodable message round-trips; any bytes are a message or a ProtocolError', () => {
    fc.assert(
      fc.property(u16, u16, fc.integer({ min: 0, max: 255 }), fc.integer({ min: -100, max: 100 }), fc.uint8Array({ maxLength: 40 }), (x, y, buttons, d, raw) => {
        expect(parseInput(encodeInput.pointer(x, y, buttons))).toEqual({ type: 'pointer', x, y, buttons });
        expect(parseInput(encodeInput.wheel(x, y, d, -d))).toEqual({ type: 'wheel', x, y, dx: d, dy: -d || 0 });
        try {
          parseInput(Buffer.from(raw));
        } catch (e) {
          expect(e).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('CDP pipe: JSON messages split anywhere come out whole, one each, in order', () => {
    fc.assert(
      fc.property(fc.array(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }), { minLength: 1, maxLength: 10 }), fc.array(fc.nat(), { maxLength: 10 }), (objs, cuts) => {
        const wire = Buffer.from(objs.map((o) => JSON.stringify(o) + '\0').join(''));
        const got: unknown[] = [];
        const s = new NulSplitter(1 << 20, (m) => got.push(m.json()), () => {});
        for (const c of split(wire, cuts)) s.push(c);
        expect(got).toEqual(objs.map((o) => JSON.parse(JSON.stringify(o))));
      }),
      { numRuns: 500 },
    );
  });

  it('session parameters: any values are parameters or a bad_request', () => {
    const keys = ['width', 'height', 'timeout', 'enable_vnc', 'vnc_password', 'enable_rtc', 'rtc_password', 'rtc_username', 'debug', 'debug_port', 'hitl_allowed_networks', 'auto_close'];
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.constantFrom(...keys), fc.oneof(fc.string({ maxLength: 30 }), fc.constantFrom('true', '1', '0', '320', '3840', '10.0.0.0/8', '::/0', 'passpass'))), { maxLength: 8 }), (pairs) => {
        try {
          const p = parseSessionParams(new URLSearchParams(pairs));
          expect(p.width).toBeGreaterThanOrEqual(320);
        } catch (e) {
          expect(e).toBeInstanceOf(HandoffError);
          expect((e as HandoffError).code).toBe('bad_request');
        }
      }),
      { numRuns: 2000 },
    );
  });

  it('live-link tokens: a signed link verifies to itself; any other string verifies to nothing', () => {
    const signer = new LiveLinkSigner(Buffer.alloc(32, 3));
    const link = fc.record<LiveLink>({
      sessionId: fc.string({ maxLength: 40 }),
      runId: fc.string({ maxLength: 20 }),
      kind: fc.constantFrom('control' as const, 'view' as const),
      issuedAt: fc.integer({ min: 0, max: 2 ** 45 }),
      id: fc.string({ maxLength: 20 }),
      generation: fc.nat(),
      singleUse: fc.boolean(),
    });
    fc.assert(
      fc.property(link, fc.nat(), fc.string({ minLength: 1, maxLength: 3 }), (l, at, junk) => {
        const token = signer.sign(l);
        expect(signer.verify(token)).toEqual(l);
        const i = at % token.length;
        const other = token.slice(0, i) + junk + token.slice(i + 1);
        if (other !== token) expect(signer.verify(other)).toBeNull();
      }),
      { numRuns: 1000 },
    );
  });
});

describe('findings of the long runs, each now a test', () => {
  it('a pipe message that is not JSON (or is JSON null) fails its command instead of throwing out of the pipe reader', async () => {
    // Found by the "cdp pipe splitter and router" target: PipeMessage parsed every message
    // without a session tail with a bare JSON.parse, so one malformed message from the pipe
    // threw out of the stream's data handler (an uncaught exception for the daemon).
    const fromBrowser = new PassThrough();
    const mux = new CdpPipeMux(new PassThrough(), fromBrowser);
    const first = mux.send('Browser.getVersion');
    const second = mux.send('Browser.getVersion');
    const events: string[] = [];
    mux.on('event', (m) => events.push(m));
    // A broken answer read by the fast path (its id and session tail look right): an error for the waiter.
    expect(() => fromBrowser.write('{"id":1,"result":{"x":,"sessionId":"S1"}\0')).not.toThrow();
    await expect(first).rejects.toBeInstanceOf(CdpCommandError);
    // Broken messages without a tail route nowhere; what follows is still routed.
    expect(() => fromBrowser.write('null\0{"id":2,"res\0[1,\0')).not.toThrow();
    fromBrowser.write('{"id":2,"result":{"ok":1}}\0{"method":"Target.targetCreated","params":{}}\0');
    await expect(second).resolves.toEqual({ ok: 1 });
    expect(events).toEqual(['Target.targetCreated']);
    const m: PipeMessage[] = [];
    new NulSplitter(100, (x) => m.push(x), () => {}).push(Buffer.from('not json\0'));
    expect(m[0]!.json()).toBeNull();
    expect(m[0]!.route).toEqual({});
  });
});

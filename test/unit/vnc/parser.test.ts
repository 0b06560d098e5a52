import { describe, expect, it } from 'vitest';
import { RfbParser, type ClientMsg } from '../../../src/liveview/vnc/parser.js';
import { writePixelFormat } from '../../../src/liveview/vnc/pixel-format.js';

function parse(chunks: Buffer[]) {
  const msgs: ClientMsg[] = [];
  const errors: string[] = [];
  const p = new RfbParser(
    (m) => msgs.push(m),
    (e) => errors.push(e),
  );
  for (const c of chunks) p.push(c);
  return { msgs, errors };
}

const u16 = (n: number) => Buffer.of(n >> 8, n & 0xff);
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const pf16 = {
  bitsPerPixel: 16,
  depth: 16,
  bigEndian: true,
  trueColour: true,
  redMax: 31,
  greenMax: 63,
  blueMax: 31,
  redShift: 11,
  greenShift: 5,
  blueShift: 0,
};

// A whole 3.8 client session, handshake included (RFC 6143 7.1-7.5).
const session = Buffer.concat([
  Buffer.from('RFB 003.008\n'),
  Buffer.of(2),
  Buffer.from('0123456789abcdef'),
  Buffer.of(1),
  Buffer.of(0, 0, 0, 0),
  writePixelFormat(pf16),
  Buffer.of(2, 0),
  u16(3),
  u32(7),
  u32(16),
  u32(-23),
  Buffer.of(3, 1),
  u16(1),
  u16(2),
  u16(300),
  u16(200),
  Buffer.of(4, 1, 0, 0),
  u32(0xffe1),
  Buffer.of(5, 5),
  u16(640),
  u16(480),
  Buffer.of(6, 0, 0, 0),
  u32(6),
  Buffer.from('h\xe9llo!', 'latin1'),
  Buffer.of(6, 0, 0, 0),
  u32(0),
  Buffer.of(251, 0),
  u16(800),
  u16(600),
  Buffer.of(1, 0),
  Buffer.alloc(16),
]);

const expected: ClientMsg[] = [
  { type: 'version', minor: 8 },
  { type: 'securityType', securityType: 2 },
  { type: 'authResponse', response: Buffer.from('0123456789abcdef') },
  { type: 'clientInit', shared: true },
  { type: 'setPixelFormat', format: pf16 },
  { type: 'setEncodings', encodings: [7, 16, -23] },
  { type: 'updateRequest', incremental: true, rect: { x: 1, y: 2, width: 300, height: 200 } },
  { type: 'key', down: true, keysym: 0xffe1 },
  { type: 'pointer', buttonMask: 5, x: 640, y: 480 },
  { type: 'cutText', text: 'héllo!' },
  { type: 'cutText', text: '' },
  { type: 'setDesktopSize', width: 800, height: 600 },
];

describe('RfbParser', () => {
  it('parses a whole session', () => {
    expect(parse([session])).toEqual({ msgs: expected, errors: [] });
  });

  it('yields identical messages for every split point and byte by byte', () => {
    for (let i = 1; i < session.length; i++) {
      expect(parse([session.subarray(0, i), session.subarray(i)])).toEqual({ msgs: expected, errors: [] });
    }
    expect(parse([...session].map((b) => Buffer.of(b)))).toEqual({ msgs: expected, errors: [] });
  });

  it('skips the security type choice for 3.3 and treats unknown versions as 3.3', () => {
    for (const v of ['RFB 003.003\n', 'RFB 003.889\n', 'RFB 004.001\n', 'RFB 003.005\n']) {
      const { msgs } = parse([Buffer.from(v), Buffer.from('0123456789abcdef'), Buffer.of(0)]);
      expect(msgs.map((m) => m.type)).toEqual(['version', 'authResponse', 'clientInit']);
      expect(msgs[0]).toEqual({ type: 'version', minor: 3 });
    }
  });

  const init = Buffer.concat([Buffer.from('RFB 003.003\n'), Buffer.alloc(16), Buffer.of(1)]);
  it.each([
    ['a malformed version', Buffer.from('HTTP/1.1 200'), /version/],
    ['too many encodings', Buffer.concat([init, Buffer.of(2, 0), u16(1025)]), /1025 encodings/],
    ['a ClientCutText over 1 MiB', Buffer.concat([init, Buffer.of(6, 0, 0, 0), u32(1024 * 1024 + 1)]), /ClientCutText/],
    ['an unknown message type', Buffer.concat([init, Buffer.of(42)]), /unknown message type 42/],
  ])('fails once on %s and ignores everything after', (_name, bytes, reason) => {
    const { msgs, errors } = parse([bytes, Buffer.alloc(64, 3), session]);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(reason);
    expect(msgs.filter((m) => m.type === 'updateRequest')).toEqual([]);
  });

  it('accepts a ClientCutText of exactly 1 MiB', () => {
    const text = Buffer.alloc(1024 * 1024, 0x61);
    const { msgs, errors } = parse([init, Buffer.of(6, 0, 0, 0), u32(text.length), text]);
    expect(errors).toEqual([]);
    expect(msgs.at(-1)).toEqual({ type: 'cutText', text: text.toString('latin1') });
  });

  it('stops when the handler stops it mid-chunk', () => {
    const msgs: ClientMsg[] = [];
    const p: RfbParser = new RfbParser(
      (m) => {
        msgs.push(m);
        if (m.type === 'authResponse') p.stop();
      },
      () => {},
    );
    p.push(session);
    expect(msgs.map((m) => m.type)).toEqual(['version', 'securityType', 'authResponse']);
  });
});

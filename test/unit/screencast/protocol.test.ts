import { describe, expect, it } from 'vitest';
import { parseViewerMessage, pictureMessage, ProtocolError } from '../../../src/liveview/screencast/protocol.js';

const text = (m: unknown) => Buffer.from(typeof m === 'string' ? m : JSON.stringify(m));

describe('screencast protocol', () => {
  it('writes the 14-byte big-endian picture header', () => {
    const m = pictureMessage(2, 0x01020304, 0x0506, 0x0708, 0x090a, 0x0b0c, Buffer.from([0xff, 0xd8]));
    expect([...m]).toEqual([2, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0, 0xff, 0xd8]);
  });

  it('parses every viewer message type', () => {
    expect(parseViewerMessage(text({ type: 'ack', seq: 7 }), false)).toEqual({ type: 'ack', seq: 7 });
    expect(parseViewerMessage(text({ type: 'pointer', x: 1.5, y: -2, buttons: 5, extra: 1 }), false)).toEqual({ type: 'pointer', x: 1.5, y: -2, buttons: 5 });
    expect(parseViewerMessage(text({ type: 'wheel', x: 1, y: 2, dx: 0, dy: -3 }), false)).toEqual({ type: 'wheel', x: 1, y: 2, dx: 0, dy: -3 });
    expect(parseViewerMessage(text({ type: 'key', keysym: 0xff0d, down: false }), false)).toEqual({ type: 'key', keysym: 0xff0d, down: false });
    expect(parseViewerMessage(text({ type: 'paste', text: '' }), false)).toEqual({ type: 'paste', text: '' });
    expect(parseViewerMessage(text({ type: 'quality', value: 10 }), false)).toEqual({ type: 'quality', value: 10 });
    expect(parseViewerMessage(text({ type: 'handoff', outcome: 'failed' }), false)).toEqual({ type: 'handoff', outcome: 'failed' });
  });

  const bad: Array<[string, unknown]> = [
    ['not JSON', '{'],
    ['a string', '"ack"'],
    ['null', 'null'],
    ['no type', {}],
    ['unknown type', { type: 'nope' }],
    ['ack seq negative', { type: 'ack', seq: -1 }],
    ['ack seq fractional', { type: 'ack', seq: 1.5 }],
    ['pointer x string', { type: 'pointer', x: '1', y: 0, buttons: 0 }],
    ['pointer buttons > 255', { type: 'pointer', x: 0, y: 0, buttons: 256 }],
    ['pointer x huge', { type: 'pointer', x: 1e12, y: 0, buttons: 0 }],
    ['wheel too many notches', { type: 'wheel', x: 0, y: 0, dx: 0, dy: 1000 }],
    ['key down missing', { type: 'key', keysym: 1 }],
    ['key keysym too big', { type: 'key', keysym: 0x20000000, down: true }],
    ['paste text number', { type: 'paste', text: 1 }],
    ['quality 9', { type: 'quality', value: 9 }],
    ['quality 96', { type: 'quality', value: 96 }],
    ['handoff outcome', { type: 'handoff', outcome: 'timeout' }],
  ];
  for (const [what, m] of bad) {
    it(`rejects ${what} with 1008`, () => {
      try {
        parseViewerMessage(text(m), false);
        expect.unreachable();
      } catch (e) {
        expect(e).toBeInstanceOf(ProtocolError);
        expect((e as ProtocolError).closeCode).toBe(1008);
        expect((e as ProtocolError).code).toBe('bad_request');
      }
    });
  }

  it('rejects binary with 1008 and text over 1 MiB with 1009', () => {
    expect(() => parseViewerMessage(text({ type: 'ack', seq: 1 }), true)).toThrow(expect.objectContaining({ closeCode: 1008 }));
    const big = Buffer.alloc((1 << 20) + 1, 0x20);
    expect(() => parseViewerMessage(big, false)).toThrow(expect.objectContaining({ closeCode: 1009, code: 'message_too_big' }));
    // Exactly 1 MiB is allowed.
    const ok = Buffer.alloc(1 << 20, 0x20);
    text({ type: 'ack', seq: 1 }).copy(ok);
    expect(parseViewerMessage(ok, false)).toEqual({ type: 'ack', seq: 1 });
  });
});

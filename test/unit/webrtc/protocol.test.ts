import { describe, expect, it } from 'vitest';
import {
  CLOSE_POLICY,
  CLOSE_TOO_BIG,
  MAX_PASTE_BYTES,
  MAX_SIGNAL_BYTES,
  PasteAssembler,
  ProtocolError,
  chooseCodec,
  encodeInput,
  parseInput,
  parseSignal,
} from '../../../src/liveview/webrtc/protocol.js';

const text = (o: unknown) => Buffer.from(JSON.stringify(o));

function protocolError(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return e as ProtocolError;
  }
  throw new Error('no error');
}

describe('signalling messages', () => {
  it('parses hello with and without credentials', () => {
    expect(parseSignal(text({ type: 'hello', username: 'u', password: 'p', codecs: ['H264', 'VP8'] }), false)).toEqual({
      type: 'hello',
      username: 'u',
      password: 'p',
      codecs: ['H264', 'VP8'],
    });
    expect(parseSignal(text({ type: 'hello', codecs: [] }), false)).toEqual({ type: 'hello', username: null, password: null, codecs: [] });
  });

  it('parses answer, candidate and handoff', () => {
    expect(parseSignal(text({ type: 'answer', sdp: 'v=0' }), false)).toEqual({ type: 'answer', sdp: 'v=0' });
    expect(parseSignal(text({ type: 'candidate', candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host', sdpMid: '0', sdpMLineIndex: 0 }), false)).toEqual({
      type: 'candidate',
      candidate: 'candidate:1 1 udp 1 1.2.3.4 5 typ host',
      sdpMid: '0',
      sdpMLineIndex: 0,
    });
    expect(parseSignal(text({ type: 'handoff', outcome: 'failed' }), false)).toEqual({ type: 'handoff', outcome: 'failed' });
  });

  it('refuses what is not a well-formed message, with 1008', () => {
    const cases: Array<[Buffer, boolean]> = [
      [Buffer.from('{"type":"hello"'), false],
      [text([1, 2]), false],
      [text({ type: 'hello' }), false],
      [text({ type: 'hello', codecs: 'H264' }), false],
      [text({ type: 'hello', codecs: [1] }), false],
      [text({ type: 'hello', codecs: [], password: 5 }), false],
      [text({ type: 'hello', codecs: [], password: 'x'.repeat(2000) }), false],
      [text({ type: 'answer', sdp: '' }), false],
      [text({ type: 'candidate', candidate: 'c', sdpMLineIndex: -1 }), false],
      [text({ type: 'handoff', outcome: 'maybe' }), false],
      [text({ type: 'pointer' }), false],
      [text({ nope: 1 }), false],
      [text({ type: 'hello', codecs: [] }), true],
    ];
    for (const [data, binary] of cases) expect(protocolError(() => parseSignal(data, binary)).closeCode).toBe(CLOSE_POLICY);
  });

  it('closes with 1009 on an oversized message', () => {
    const e = protocolError(() => parseSignal(Buffer.alloc(MAX_SIGNAL_BYTES + 1, 0x20), false));
    expect(e.closeCode).toBe(CLOSE_TOO_BIG);
    expect(e.code).toBe('message_too_big');
  });

  it('takes the tab and file messages of the screencast; only a file_chunk may pass the 64 KiB cap', () => {
    expect(parseSignal(text({ type: 'tab', action: 'activate', id: 'T1' }), false)).toEqual({ type: 'tab', action: 'activate', id: 'T1' });
    expect(parseSignal(text({ type: 'file_cancel', request: 'r1' }), false)).toEqual({ type: 'file_cancel', request: 'r1' });
    const data = Buffer.alloc(300_000, 7).toString('base64');
    expect(parseSignal(text({ type: 'file_chunk', request: 'r1', data }), false)).toMatchObject({ type: 'file_chunk', request: 'r1' });
    const big = protocolError(() => parseSignal(text({ type: 'answer', sdp: 'x'.repeat(MAX_SIGNAL_BYTES) }), false));
    expect([big.closeCode, big.code]).toEqual([CLOSE_TOO_BIG, 'message_too_big']);
    expect(protocolError(() => parseSignal(text({ type: 'tab', action: 'explode' }), false)).closeCode).toBe(CLOSE_POLICY);
  });

  it('chooses H.264 first, VP8 otherwise, nothing without a common codec', () => {
    expect(chooseCodec(['VP8', 'H264'])).toBe('H264');
    expect(chooseCodec(['video/h264'])).toBe('H264');
    expect(chooseCodec(['VP9', 'VP8', 'AV1'])).toBe('VP8');
    expect(chooseCodec(['AV1'])).toBeNull();
    expect(chooseCodec([])).toBeNull();
  });
});

describe('DataChannel input', () => {
  it('reads the documented byte layouts', () => {
    expect(parseInput(Buffer.from([0x01, 0x01, 0x02, 0x00, 0x30, 0x05]))).toEqual({ type: 'pointer', x: 258, y: 48, buttons: 5 });
    expect(parseInput(Buffer.from([0x02, 0x00, 0x0a, 0x00, 0x14, 0xfe, 0x03]))).toEqual({ type: 'wheel', x: 10, y: 20, dx: -2, dy: 3 });
    expect(parseInput(Buffer.from([0x03, 0x00, 0x00, 0xff, 0x0d, 0x01]))).toEqual({ type: 'key', keysym: 0xff0d, down: true });
    expect(parseInput(Buffer.from([0x03, 0x01, 0x00, 0x20, 0xac, 0x00]))).toEqual({ type: 'key', keysym: 0x10020ac, down: false });
    const paste = parseInput(Buffer.from([0x04, 0x01, 0x68, 0x69]));
    expect(paste).toMatchObject({ type: 'paste', last: true });
    expect((paste as { bytes: Buffer }).bytes.toString()).toBe('hi');
  });

  it('round-trips the encoders', () => {
    expect(parseInput(encodeInput.pointer(1279, 719, 0x81))).toEqual({ type: 'pointer', x: 1279, y: 719, buttons: 0x81 });
    expect(parseInput(encodeInput.wheel(3, 4, 100, -100))).toEqual({ type: 'wheel', x: 3, y: 4, dx: 100, dy: -100 });
    expect(parseInput(encodeInput.key(0x61, true))).toEqual({ type: 'key', keysym: 0x61, down: true });
    const chunks = encodeInput.paste('x'.repeat(40_000), 16 * 1024);
    expect(chunks.map((c) => c[1])).toEqual([0, 0, 1]);
    expect(encodeInput.paste('').map((c) => [...c])).toEqual([[0x04, 0x01]]);
  });

  it('refuses wrong lengths, out-of-range values, text and unknown types', () => {
    const bad = [
      Buffer.from([0x01, 0, 0, 0, 0]),
      Buffer.from([0x01, 0, 0, 0, 0, 0, 0]),
      Buffer.from([0x02, 0, 0, 0, 0, 101, 0]),
      Buffer.from([0x02, 0, 0, 0, 0, 0, 0x9b]), // -101
      Buffer.from([0x03, 0x20, 0, 0, 0, 1]), // keysym over 29 bits
      Buffer.from([0x03, 0, 0, 0, 0x61, 2]),
      Buffer.from([0x04]),
      Buffer.from([0x04, 0x02, 0x61]),
      Buffer.from([0x09, 0]),
      Buffer.alloc(0),
    ];
    for (const b of bad) expect(protocolError(() => parseInput(b)).closeCode).toBe(CLOSE_POLICY);
    expect(protocolError(() => parseInput('{"type":"key"}')).closeCode).toBe(CLOSE_POLICY);
    expect(protocolError(() => parseInput(Buffer.alloc(70_000, 4))).closeCode).toBe(CLOSE_TOO_BIG);
  });

  it('joins paste chunks split inside a UTF-8 sequence', () => {
    const p = new PasteAssembler();
    const bytes = Buffer.from('päste ✓', 'utf8');
    expect(p.push(false, bytes.subarray(0, 2))).toBeNull(); // 'p' + the first byte of 'ä'
    expect(p.push(false, bytes.subarray(2, 9))).toBeNull();
    expect(p.push(true, bytes.subarray(9))).toBe('päste ✓');
    expect(p.push(true, Buffer.from('again'))).toBe('again');
  });

  it('caps a paste at 1 MiB in total', () => {
    const p = new PasteAssembler();
    const chunk = Buffer.alloc(64 * 1024, 0x61);
    for (let i = 0; i < MAX_PASTE_BYTES / chunk.length; i++) expect(p.push(false, chunk)).toBeNull();
    const e = protocolError(() => p.push(true, Buffer.from('b')));
    expect(e.code).toBe('message_too_big');
    // The assembler starts over after the error.
    expect(p.push(true, Buffer.from('ok'))).toBe('ok');
  });
});

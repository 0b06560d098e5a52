import { describe, expect, it } from 'vitest';
import {
  PLAYOUT_DELAY_ZERO,
  RtpRewriter,
  addHeaderExtension,
  h264KeyframeStart,
  parseRtp,
  vp8KeyframeStart,
} from '../../../src/liveview/webrtc/rtp.js';

/** An RTP v2 packet: PT 96, the given seq/ts/ssrc, then `payload`. */
function rtp(seq: number, ts: number, payload: number[], opts: { marker?: boolean; csrc?: number; ext?: Buffer; pad?: number } = {}): Buffer {
  const csrc = opts.csrc ?? 0;
  const head = Buffer.alloc(12 + 4 * csrc);
  head[0] = 0x80 | (opts.ext ? 0x10 : 0) | (opts.pad ? 0x20 : 0) | csrc;
  head[1] = (opts.marker ? 0x80 : 0) | 96;
  head.writeUInt16BE(seq, 2);
  head.writeUInt32BE(ts, 4);
  head.writeUInt32BE(0x11223344, 8);
  const pad = opts.pad ? [...Array(opts.pad - 1).fill(0), opts.pad] : [];
  return Buffer.concat([head, opts.ext ?? Buffer.alloc(0), Buffer.from(payload), Buffer.from(pad)]);
}

describe('parseRtp', () => {
  it('finds the payload behind CSRCs, an extension and before padding', () => {
    const ext = Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x12, 0xaa, 0xbb, 0x00]);
    const p = rtp(65535, 0xfffffff0, [7, 8, 9], { marker: true, csrc: 2, ext, pad: 3 });
    const info = parseRtp(p)!;
    expect(info).toMatchObject({ payloadType: 96, marker: true, sequenceNumber: 65535, timestamp: 0xfffffff0, ssrc: 0x11223344 });
    expect([...p.subarray(info.payloadOffset, info.payloadEnd)]).toEqual([7, 8, 9]);
  });

  it('returns null for what is not RTP v2', () => {
    expect(parseRtp(Buffer.alloc(8))).toBeNull();
    const v1 = rtp(1, 1, [1]);
    v1[0] = 0x40;
    expect(parseRtp(v1)).toBeNull();
    const badPad = rtp(1, 1, [1]);
    badPad[0]! |= 0x20;
    badPad[badPad.length - 1] = 0;
    expect(parseRtp(badPad)).toBeNull();
  });
});

describe('keyframe starts', () => {
  it('H.264: a STAP-A or single NAL starting with SPS, nothing else (RFC 6184)', () => {
    expect(h264KeyframeStart(Buffer.from([0x78, 0x00, 0x0a, 0x67, 0x42]))).toBe(true); // STAP-A [SPS ...]
    expect(h264KeyframeStart(Buffer.from([0x67, 0x42, 0xe0]))).toBe(true); // SPS
    expect(h264KeyframeStart(Buffer.from([0x7c, 0x85, 0x88]))).toBe(false); // FU-A start of an IDR: no parameter sets before it
    expect(h264KeyframeStart(Buffer.from([0x78, 0x00, 0x05, 0x41, 0x9a]))).toBe(false); // STAP-A [non-IDR slice]
    expect(h264KeyframeStart(Buffer.from([0x41, 0x9a]))).toBe(false);
    expect(h264KeyframeStart(Buffer.alloc(0))).toBe(false);
  });

  it('VP8: S=1, PID=0 and the P bit clear, behind any descriptor extension (RFC 7741)', () => {
    expect(vp8KeyframeStart(Buffer.from([0x10, 0x50]))).toBe(true); // no X, key frame (P=0)
    expect(vp8KeyframeStart(Buffer.from([0x10, 0x51]))).toBe(false); // inter frame
    expect(vp8KeyframeStart(Buffer.from([0x00, 0x50]))).toBe(false); // not a start
    expect(vp8KeyframeStart(Buffer.from([0x11, 0x50]))).toBe(false); // PID 1
    // X, I with a 15-bit picture id (M set): what ffmpeg writes.
    expect(vp8KeyframeStart(Buffer.from([0x90, 0x80, 0x81, 0x23, 0x50]))).toBe(true);
    expect(vp8KeyframeStart(Buffer.from([0x90, 0x80, 0x81, 0x23, 0x51]))).toBe(false);
    // X, I (7-bit), L, T: one byte each.
    expect(vp8KeyframeStart(Buffer.from([0x90, 0xe0, 0x05, 0x01, 0x20, 0x50]))).toBe(true);
    expect(vp8KeyframeStart(Buffer.from([0x90, 0xe0, 0x05]))).toBe(false);
  });
});

describe('RtpRewriter', () => {
  it('keeps spacing within a run and never touches the shared packet', () => {
    const r = new RtpRewriter(() => 0);
    const a = rtp(100, 9000, [1]);
    const out = r.rewrite(a, parseRtp(a)!, 1);
    expect(out).not.toBe(a);
    expect(parseRtp(out)).toMatchObject({ sequenceNumber: 100, timestamp: 9000 });
    const b = rtp(101, 12000, [2]);
    expect(parseRtp(r.rewrite(b, parseRtp(b)!, 1))).toMatchObject({ sequenceNumber: 101, timestamp: 12000 });
    expect(parseRtp(a)).toMatchObject({ sequenceNumber: 100, timestamp: 9000 });
  });

  it('continues after the last packet when the encoder restarts with new bases', () => {
    let now = 1000;
    const r = new RtpRewriter(() => now);
    const a = rtp(65535, 0xffffff00, [1]);
    r.rewrite(a, parseRtp(a)!, 1);
    now += 500; // half a second without packets
    const b = rtp(4242, 77, [2]);
    const out = parseRtp(r.rewrite(b, parseRtp(b)!, 2))!;
    expect(out.sequenceNumber).toBe(0); // 65535 + 1, wrapped
    expect(out.timestamp).toBe((0xffffff00 + 500 * 90) >>> 0);
    const c = rtp(4243, 77 + 3000, [3]);
    expect(parseRtp(r.rewrite(c, parseRtp(c)!, 2))).toMatchObject({ sequenceNumber: 1, timestamp: (0xffffff00 + 500 * 90 + 3000) >>> 0 });
  });

  it('adds the playout-delay extension when asked', () => {
    const r = new RtpRewriter(() => 0);
    const a = rtp(5, 6, [0xaa, 0xbb]);
    const out = r.rewrite(a, parseRtp(a)!, 1, 6);
    const info = parseRtp(out)!;
    expect(info).toMatchObject({ sequenceNumber: 5, timestamp: 6 });
    expect([...out.subarray(info.payloadOffset, info.payloadEnd)]).toEqual([0xaa, 0xbb]);
    // 0xBEDE, one word, element id 6 length 3 (L=2), 3 zero bytes (min 0, max 0).
    expect([...out.subarray(12, 20)]).toEqual([0xbe, 0xde, 0x00, 0x01, 0x62, 0, 0, 0]);
  });
});

describe('addHeaderExtension', () => {
  it('inserts after the CSRCs, sets X, pads to a word', () => {
    const p = rtp(1, 2, [9], { csrc: 1 });
    const out = addHeaderExtension(p, 3, Buffer.from([1, 2, 3, 4, 5]));
    expect(out[0]! & 0x10).toBe(0x10);
    expect([...out.subarray(16, 28)]).toEqual([0xbe, 0xde, 0x00, 0x02, 0x34, 1, 2, 3, 4, 5, 0, 0]);
    expect([...out.subarray(parseRtp(out)!.payloadOffset)]).toEqual([9]);
  });

  it('leaves a packet that already has extensions alone', () => {
    const p = rtp(1, 2, [9], { ext: Buffer.from([0xbe, 0xde, 0, 1, 0x10, 1, 0, 0]) });
    expect(addHeaderExtension(p, 6, PLAYOUT_DELAY_ZERO)).toBe(p);
  });
});

import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { FrameSplitter, closeFrame, textFrame } from '../../../src/cdp/frames.js';

/** A client frame as RFC 6455 5.2 lays it out: masked, with the given payload length form. */
function maskedFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const mask = randomBytes(4);
  const n = payload.length;
  const len = n < 126 ? Buffer.from([0x80 | n]) : n < 65536 ? Buffer.from([0x80 | 126, n >> 8, n & 0xff]) : Buffer.concat([Buffer.from([0x80 | 127]), u64(n)]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i & 3]!));
  return Buffer.concat([Buffer.from([(fin ? 0x80 : 0) | opcode]), len, mask, masked]);
}

function u64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

function run(stream: Buffer, holdLimit: number, cut: (len: number) => number[]) {
  const passed: Buffer[] = [];
  const held: { payload: string; opcode: number }[] = [];
  const boundaries: boolean[] = [];
  const splitter = new FrameSplitter(holdLimit, {
    pass: (b) => passed.push(Buffer.from(b)),
    frame: (raw, payload, opcode) => {
      held.push({ payload: payload.toString(), opcode });
      passed.push(Buffer.from(raw));
    },
  });
  let at = 0;
  for (const end of [...cut(stream.length), stream.length]) {
    splitter.push(stream.subarray(at, end));
    boundaries.push(splitter.atBoundary);
    at = end;
  }
  return { out: Buffer.concat(passed), held, splitter, boundaries };
}

describe('FrameSplitter', () => {
  const small = Buffer.from('{"id":1,"method":"Handoff.getState"}');
  const medium = Buffer.from('x'.repeat(300));
  const large = randomBytes(70_000);
  const stream = Buffer.concat([maskedFrame(1, small), maskedFrame(2, large), maskedFrame(1, medium), maskedFrame(9, Buffer.alloc(0)), maskedFrame(8, Buffer.from([0x03, 0xe8]))]);

  it('passes every byte through unchanged and hands small frames over whole, at any split', () => {
    for (const step of [1, 2, 3, 7, 13, 64, 1000, stream.length]) {
      const cuts = (len: number) => Array.from({ length: Math.floor((len - 1) / step) }, (_, i) => (i + 1) * step);
      const { out, held, splitter } = run(stream, 4096, cuts);
      expect(out.equals(stream)).toBe(true);
      expect(held.map((h) => h.opcode)).toEqual([1, 1, 9, 8]);
      expect(held[0]!.payload).toBe(small.toString());
      expect(held[1]!.payload).toBe(medium.toString());
      expect(splitter.sawClose).toBe(true);
      expect(splitter.atBoundary).toBe(true);
    }
  });

  it('holds nothing with holdLimit -1 and knows where frames end', () => {
    const a = textFrame('{"method":"x"}');
    const b = textFrame('y'.repeat(200));
    const { out, held, boundaries } = run(Buffer.concat([a, b]), -1, () => [3, a.length, a.length + 5]);
    expect(held).toEqual([]);
    expect(out.equals(Buffer.concat([a, b]))).toBe(true);
    expect(boundaries).toEqual([false, true, false, true]);
  });

  it('lets a consumer keep a held frame from the other side', () => {
    const passed: Buffer[] = [];
    const splitter = new FrameSplitter(4096, { pass: (b) => passed.push(b), frame: (raw, payload) => !payload.includes('Handoff.') && passed.push(raw) });
    const keep = maskedFrame(1, Buffer.from('{"id":2,"method":"Page.enable"}'));
    splitter.push(Buffer.concat([maskedFrame(1, small), keep]));
    expect(Buffer.concat(passed).equals(keep)).toBe(true);
  });

  it('builds server frames of every length form and a close frame with code and reason', () => {
    for (const n of [0, 125, 126, 65535, 65536]) {
      const f = textFrame('a'.repeat(n));
      const { held } = run(f, 1 << 20, () => []);
      expect(held[0]!.payload.length).toBe(n);
    }
    const c = closeFrame(4000, 'session stopped');
    expect(c[0]).toBe(0x88);
    expect(c.readUInt16BE(2)).toBe(4000);
    expect(c.subarray(4).toString()).toBe('session stopped');
    expect(closeFrame(4000, 'x'.repeat(300)).length).toBe(4 + 123);
  });
});

import { describe, expect, it } from 'vitest';
import { GopBuffer } from '../../../src/liveview/webrtc/gop.js';
import type { EncodedPacket } from '../../../src/liveview/webrtc/encoder.js';

let seq = 0;
function packet(keyframeStart: boolean, generation = 1, bytes = 100): EncodedPacket {
  const sequenceNumber = seq++;
  return { data: Buffer.alloc(bytes), info: { sequenceNumber } as EncodedPacket['info'], generation, keyframeStart };
}
const seqs = (ps: readonly EncodedPacket[]) => ps.map((p) => p.info.sequenceNumber);

describe('GopBuffer', () => {
  it('holds nothing before the first keyframe, then everything from the latest keyframe on', () => {
    const g = new GopBuffer<EncodedPacket>();
    g.add(packet(false));
    g.add(packet(false));
    expect(g.snapshot()).toEqual([]);
    const k1 = packet(true);
    const d1 = packet(false);
    g.add(k1);
    g.add(d1);
    expect(seqs(g.snapshot())).toEqual(seqs([k1, d1]));
    const k2 = packet(true);
    const d2 = packet(false);
    g.add(k2);
    g.add(d2);
    expect(seqs(g.snapshot())).toEqual(seqs([k2, d2]));
    expect(g.snapshot()[0]!.keyframeStart).toBe(true);
  });

  it('drops the GOP of an earlier encoder run: a restart holds nothing until its own keyframe', () => {
    const g = new GopBuffer<EncodedPacket>();
    g.add(packet(true, 1));
    g.add(packet(false, 1));
    g.add(packet(false, 2));
    expect(g.snapshot()).toEqual([]);
    const k = packet(true, 2);
    g.add(k);
    expect(seqs(g.snapshot())).toEqual(seqs([k]));
  });

  it('gives up a GOP past its byte cap until the next keyframe', () => {
    const g = new GopBuffer<EncodedPacket>(1000);
    g.add(packet(true, 1, 400));
    g.add(packet(false, 1, 400));
    expect(g.snapshot()).toHaveLength(2);
    g.add(packet(false, 1, 400));
    expect(g.snapshot()).toEqual([]);
    g.add(packet(false, 1, 10));
    expect(g.snapshot()).toEqual([]);
    g.add(packet(true, 1, 10));
    expect(g.snapshot()).toHaveLength(1);
  });

  it('gives a copy: packets added later do not appear in a snapshot being replayed', () => {
    const g = new GopBuffer<EncodedPacket>();
    g.add(packet(true));
    const snap = g.snapshot();
    g.add(packet(false));
    expect(snap).toHaveLength(1);
    expect(g.snapshot()).toHaveLength(2);
  });
});

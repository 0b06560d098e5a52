/** What the buffer needs of an encoded packet (encoder.ts EncodedPacket). */
export interface GopPacket {
  data: Buffer;
  /** Which encoder run produced it. */
  generation: number;
  /** The first packet of a keyframe a decoder can start from. */
  keyframeStart: boolean;
}

/** The most a held GOP may take (a 720p one-second GOP is typically 0.2-2 MB). */
export const MAX_GOP_BYTES = 8 * 1024 * 1024;

/**
 * The packets of the current group of pictures, from its keyframe start to the last packet
 * sent, so a viewer that connects while the encoder runs can start at once instead of waiting
 * up to a GOP for the next keyframe. Holds nothing before the first keyframe of a run, after
 * an encoder restart (a new generation) until its keyframe, or once the GOP outgrows maxBytes.
 */
export class GopBuffer<P extends GopPacket> {
  private packets: P[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes = MAX_GOP_BYTES) {}

  add(p: P): void {
    const first = this.packets[0];
    if (p.keyframeStart || (first && p.generation !== first.generation)) this.clear();
    if (!p.keyframeStart && this.packets.length === 0) return;
    this.bytes += p.data.length;
    // A GOP this big (a very busy screen) is not worth a burst: joiners wait for the next keyframe.
    if (this.bytes > this.maxBytes) return this.clear();
    this.packets.push(p);
  }

  /** A copy: the caller may go on reading while new packets arrive. */
  snapshot(): readonly P[] {
    return this.packets.slice();
  }

  clear(): void {
    this.packets = [];
    this.bytes = 0;
  }
}

/**
 * What the transport needs to know about ffmpeg's RTP packets (RFC 3550 5.1): where the
 * payload is, whether a packet starts a keyframe (RFC 6184 for H.264, RFC 7741 for VP8), and
 * a per-viewer rewrite of sequence numbers and timestamps so the encoder can restart (a new
 * ffmpeg picks new random ones) without the viewer's jitter buffer seeing a jump.
 */
import type { Codec } from './protocol.js';

const RTP_VERSION = 2;
const RTP_HEADER_BYTES = 12;

export interface RtpInfo {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  /** Where the payload starts and ends in the packet (padding excluded). */
  payloadOffset: number;
  payloadEnd: number;
}

/** Reads the fixed header, CSRCs, extension and padding; null for anything that is not RTP v2. */
export function parseRtp(buf: Buffer): RtpInfo | null {
  if (buf.length < RTP_HEADER_BYTES) return null;
  const b0 = buf[0]!;
  if (b0 >> 6 !== RTP_VERSION) return null;
  const csrcCount = b0 & 0x0f;
  let offset = RTP_HEADER_BYTES + 4 * csrcCount;
  if (b0 & 0x10) {
    // Header extension (RFC 3550 5.3.1): 16-bit profile, 16-bit length in 32-bit words.
    if (buf.length < offset + 4) return null;
    offset += 4 + 4 * buf.readUInt16BE(offset + 2);
  }
  let end = buf.length;
  if (b0 & 0x20) {
    // Padding: the last octet counts the padding octets, itself included.
    const pad = buf[buf.length - 1]!;
    if (pad === 0) return null;
    end -= pad;
  }
  if (offset > end) return null;
  return {
    payloadType: buf[1]! & 0x7f,
    marker: (buf[1]! & 0x80) !== 0,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    payloadOffset: offset,
    payloadEnd: end,
  };
}

/** NAL unit types (ITU-T H.264 table 7-1) and RTP packet types (RFC 6184 5.2). */
const NAL_IDR = 5;
const NAL_SPS = 7;
const STAP_A = 24;
const FU_A = 28;

/**
 * Whether this H.264 packet is the first of a keyframe a decoder can start from. x264 puts
 * SPS+PPS in front of every IDR (repeat-headers), and ffmpeg sends them first, usually
 * aggregated in a STAP-A; a viewer must start there, not at the IDR slice (it would lack the
 * parameter sets). An IDR without a preceding SPS is not a start.
 */
export function h264KeyframeStart(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const type = payload[0]! & 0x1f;
  if (type === NAL_SPS) return true;
  // STAP-A: 1 byte header, then 16-bit size + NAL unit, repeated; the first NAL decides.
  if (type === STAP_A) return payload.length >= 4 && (payload[3]! & 0x1f) === NAL_SPS;
  return false;
}

/** Whether an H.264 packet carries IDR data (for bookkeeping: "a keyframe went out"). */
export function h264HasIdr(payload: Buffer): boolean {
  if (payload.length < 2) return false;
  const type = payload[0]! & 0x1f;
  if (type === NAL_IDR || type === NAL_SPS) return true;
  if (type === FU_A) return (payload[1]! & 0x1f) === NAL_IDR;
  if (type === STAP_A) return payload.length >= 4 && ((payload[3]! & 0x1f) === NAL_SPS || (payload[3]! & 0x1f) === NAL_IDR);
  return false;
}

/**
 * Whether this VP8 packet starts a key frame (RFC 7741 4.2 payload descriptor, 4.3 payload
 * header): S=1 and PID=0 mark the start of a frame, and the P bit of the frame's first byte
 * is 0 for a key frame.
 */
export function vp8KeyframeStart(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const d0 = payload[0]!;
  const start = (d0 & 0x10) !== 0 && (d0 & 0x07) === 0;
  if (!start) return false;
  let o = 1;
  if (d0 & 0x80) {
    // X: an extension byte I L T K, then the fields it announces.
    if (payload.length < 2) return false;
    const x = payload[1]!;
    o = 2;
    if (x & 0x80) {
      if (payload.length <= o) return false;
      o += payload[o]! & 0x80 ? 2 : 1; // PictureID, 7 or 15 bits (M bit)
    }
    if (x & 0x40) o += 1; // TL0PICIDX
    if (x & 0x30) o += 1; // TID/Y/KEYIDX share one byte
  }
  if (payload.length <= o) return false;
  return (payload[o]! & 0x01) === 0;
}

export function keyframeStart(codec: Codec, payload: Buffer): boolean {
  return codec === 'H264' ? h264KeyframeStart(payload) : vp8KeyframeStart(payload);
}

/**
 * The playout-delay header extension (webrtc.org experiments/rtp-hdrext/playout-delay): two
 * 12-bit fields, min and max delay in 10 ms units. 0/0 asks the receiver to render each frame
 * as soon as it is decoded, without a smoothing buffer (Chromium's low-latency renderer): for
 * a remote screen that a person is driving, latency matters more than smoothness.
 */
export const PLAYOUT_DELAY_URI = 'http://www.webrtc.org/experiments/rtp-hdrext/playout-delay';
export const PLAYOUT_DELAY_ZERO = Buffer.from([0, 0, 0]);

/**
 * Adds one one-byte-header extension element (RFC 8285 4.2) to a packet without extensions
 * (ffmpeg writes none); a packet that has some is returned unchanged.
 */
export function addHeaderExtension(packet: Buffer, id: number, payload: Buffer): Buffer {
  const b0 = packet[0]!;
  if (b0 & 0x10 || id < 1 || id > 14 || payload.length < 1 || payload.length > 16) return packet;
  const headerEnd = RTP_HEADER_BYTES + 4 * (b0 & 0x0f);
  const elementBytes = 1 + payload.length;
  const words = Math.ceil(elementBytes / 4);
  const ext = Buffer.alloc(4 + words * 4); // padding bytes stay 0 (RFC 8285 4.2)
  ext.writeUInt16BE(0xbede, 0);
  ext.writeUInt16BE(words, 2);
  ext[4] = (id << 4) | (payload.length - 1);
  payload.copy(ext, 5);
  const out = Buffer.concat([packet.subarray(0, headerEnd), ext, packet.subarray(headerEnd)]);
  out[0] = b0 | 0x10;
  return out;
}

/** RTP clock of video (RFC 3551 5: 90 kHz for every video payload format we use). */
const VIDEO_CLOCK_PER_MS = 90;

/**
 * One viewer's view of the sequence numbers and timestamps. Within one encoder run
 * (`generation`) packets keep their spacing; when the generation changes (ffmpeg restarted
 * with new random bases) the next packet continues right after the last one sent, its
 * timestamp advanced by the wall time since, so the receiver sees one continuous stream.
 * werift then sets the SSRC and payload type of the viewer's own track.
 */
export class RtpRewriter {
  private generation = -1;
  private seqDelta = 0;
  private tsDelta = 0;
  private lastSeq = 0;
  private lastTs = 0;
  private lastWallMs = 0;
  private started = false;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /**
   * Returns a copy of `packet` with rewritten sequence number and timestamp (never the
   * original: it is shared), with the playout-delay extension when `playoutDelayId` is set.
   */
  rewrite(packet: Buffer, info: RtpInfo, generation: number, playoutDelayId: number | null = null): Buffer {
    if (generation !== this.generation) {
      this.generation = generation;
      if (this.started) {
        const elapsed = Math.max(1, Math.round((this.now() - this.lastWallMs) * VIDEO_CLOCK_PER_MS));
        this.seqDelta = (this.lastSeq + 1 - info.sequenceNumber) & 0xffff;
        this.tsDelta = (this.lastTs + elapsed - info.timestamp) >>> 0;
      }
    }
    const out = playoutDelayId === null ? Buffer.from(packet) : addHeaderExtension(packet, playoutDelayId, PLAYOUT_DELAY_ZERO);
    const seq = (info.sequenceNumber + this.seqDelta) & 0xffff;
    const ts = (info.timestamp + this.tsDelta) >>> 0;
    out.writeUInt16BE(seq, 2);
    out.writeUInt32BE(ts, 4);
    // Only packets actually sent move the base (a reordered older packet does not).
    if (!this.started || ((seq - this.lastSeq) & 0xffff) < 0x8000) {
      this.lastSeq = seq;
      this.lastTs = ts;
    }
    this.lastWallMs = this.now();
    this.started = true;
    return out;
  }
}

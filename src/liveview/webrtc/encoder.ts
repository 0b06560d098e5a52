import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { launchProcess, type LaunchedProcess } from '../../util/process.js';
import type { Logger } from '../../util/logger.js';
import { displayClientPaths, localeEnv, SANDBOX_PATH, sandboxed } from '../../util/sandbox.js';
import type { Codec } from './protocol.js';
import { keyframeStart, parseRtp, type RtpInfo } from './rtp.js';
import { GopBuffer } from './gop.js';
import { processRestarts } from '../../metrics/daemon.js';

/** RTP payload types ffmpeg writes (dynamic range, RFC 3551 6); werift rewrites them per viewer. */
export const FFMPEG_PAYLOAD_TYPE: Record<Codec, number> = { H264: 96, VP8: 97 };
/** RTP packets at most this big: SRTP and the DTLS/UDP/IP headers still fit a 1280-byte path MTU. */
export const RTP_PACKET_BYTES = 1200;

export const DEFAULT_FPS = 30;
/** Receive buffer asked for on the loopback socket from ffmpeg. */
const RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Restart delays after ffmpeg dies: 250 ms doubling to 8 s; a run of RESET_AFTER_MS starts over. */
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 8000;
const RESET_AFTER_MS = 10_000;
/** x11grab sends frames even for a still screen, so this long without a packet is a wedged ffmpeg. */
const STALL_MS = 5000;
/** Keyframe requests restart ffmpeg at most this often (and only when keyframes are overdue). */
const KEYFRAME_RESTART_MIN_INTERVAL_MS = 5000;

export interface H264Level {
  /** level_idc (ITU-T H.264 A.3): 31 for level 3.1. */
  idc: number;
  /** As x264 takes it: "3.1". */
  name: string;
}

/** Table A-1 of ITU-T H.264: max macroblocks per second and per frame, per level. */
const LEVELS: Array<[idc: number, mbps: number, frameMbs: number]> = [
  [30, 40_500, 1_620],
  [31, 108_000, 3_600],
  [32, 216_000, 5_120],
  [40, 245_760, 8_192],
  [42, 522_240, 8_704],
  [50, 589_824, 22_080],
  [51, 983_040, 36_864],
  [52, 2_073_600, 36_864],
];

/** The lowest level that allows this picture size and rate (a decoder may refuse a stream above its level). */
export function h264Level(width: number, height: number, fps: number): H264Level {
  const frameMbs = Math.ceil(width / 16) * Math.ceil(height / 16);
  const mbps = frameMbs * fps;
  const hit = LEVELS.find(([, maxMbps, maxFrame]) => mbps <= maxMbps && frameMbs <= maxFrame) ?? LEVELS[LEVELS.length - 1]!;
  return { idc: hit[0], name: `${Math.floor(hit[0] / 10)}.${hit[0] % 10}` };
}

/** SDP profile-level-id (RFC 6184 8.1): 42 e0 = Constrained Baseline, then level_idc. */
export function h264ProfileLevelId(level: H264Level): string {
  return `42e0${level.idc.toString(16).padStart(2, '0')}`;
}

/** About 0.1 bit per pixel per frame: sharp text at 720p30 is ~2.8 Mbit/s, plenty on a LAN. */
export function targetBitrate(width: number, height: number, fps: number): number {
  return Math.min(8_000_000, Math.max(500_000, Math.round(width * height * fps * 0.1)));
}

export interface FfmpegArgsOptions {
  codec: Codec;
  /** X display name ':N'. */
  display: string;
  width: number;
  height: number;
  fps: number;
  /** Where ffmpeg sends RTP: our loopback UDP socket. */
  port: number;
}

/** The ffmpeg command line, one reason per flag. */
export function ffmpegArgs(o: FfmpegArgsOptions): string[] {
  const bitrate = targetBitrate(o.width, o.height, o.fps);
  // A one-second GOP: ffmpeg cannot answer a keyframe request, so this bounds how long a new
  // or recovering viewer waits for a picture.
  const gop = String(o.fps);
  const input = [
    '-hide_banner', // no build banner in the stderr tail we keep for errors
    '-nostdin', // never reads a terminal: stdin is not ours
    '-loglevel', 'error', // stderr is kept for error messages only
    '-probesize', '32', // x11grab knows its format; probing only delays the first frame
    '-analyzeduration', '0', // same: start encoding at once
    '-fflags', 'nobuffer', // hand each grabbed frame on at once
    '-f', 'x11grab', // read the session's display directly (XShm): no copy through the daemon
    '-draw_mouse', '0', // the viewer's own cursor is the pointer; a grabbed one lags behind it
    '-framerate', String(o.fps), // grab at the delivery rate: x11grab paces itself by the clock
    '-video_size', `${o.width}x${o.height}`, // the whole screen, which is the page
    '-i', o.display, // DISPLAY; XAUTHORITY comes from the environment
    '-an', // video only
  ];
  // 4:2:0 needs even sizes: drop a last odd column/row rather than fail.
  const crop = o.width % 2 || o.height % 2 ? ['-vf', 'crop=trunc(iw/2)*2:trunc(ih/2)*2'] : [];
  const common = [
    '-pix_fmt', 'yuv420p', // the only chroma format WebRTC decoders take
    '-g', gop, // keyframe interval, see gop above
    '-keyint_min', gop, // no shorter GOPs either: keyframes are the expensive frames
    '-b:v', String(bitrate), // target rate (see targetBitrate)
    '-maxrate', String(bitrate), // capped, so a busy page cannot flood the link
    '-bufsize', String(Math.round(bitrate / 2)), // half a second of VBV: bursts stay short
  ];
  const codec =
    o.codec === 'H264'
      ? [
          '-c:v', 'libx264',
          '-profile:v', 'baseline', // x264's baseline is Constrained Baseline, what every WebRTC peer decodes
          '-level:v', h264Level(o.width, o.height, o.fps).name, // matches profile-level-id in our SDP
          '-preset', 'ultrafast', // the cheapest encode: a screen at 30 fps within ~30% of a core
          '-tune', 'zerolatency', // no lookahead or frame threads: each frame leaves as soon as it is grabbed
          '-bf', '0', // no B-frames (constrained baseline has none; they would add a frame of delay)
          '-x264-params', 'repeat-headers=1:scenecut=0', // SPS/PPS before every IDR so any keyframe is a start; a steady GOP
        ]
      : [
          '-c:v', 'libvpx',
          '-deadline', 'realtime', // libvpx's realtime mode: bounded time per frame
          '-cpu-used', '16', // libvpx VP8's fastest speed step (-16..16): quality traded for CPU
          '-lag-in-frames', '0', // no lookahead: no added delay
          '-auto-alt-ref', '0', // no hidden alt-ref frames (they need lookahead)
          '-error-resilient', '1', // decoders recover from a lost packet without a keyframe
          '-threads', '1', // libvpx's VP8 threads spin-wait: 2 threads cost ~3x the CPU of one for the same 30 fps (measured)
          '-static-thresh', '100', // skip encoding unchanged blocks: a screen is mostly still
        ];
  const output = [
    '-f', 'rtp', // RTP packetisation of the codec (RFC 6184 mode 1 / RFC 7741)
    '-payload_type', String(FFMPEG_PAYLOAD_TYPE[o.codec]), // what we check on receipt
    '-rtpflags', 'skip_rtcp', // no sender reports: werift writes its own per viewer
    `rtp://127.0.0.1:${o.port}?pkt_size=${RTP_PACKET_BYTES}`, // loopback only, into werift's side; small enough for SRTP
  ];
  return [...input, ...crop, ...common, ...codec, ...output];
}

export interface EncodedPacket {
  /** The packet as ffmpeg sent it; shared by every subscriber, who must not modify it. */
  data: Buffer;
  info: RtpInfo;
  /** Which ffmpeg run produced it (1, 2, ...): a restart starts new sequence numbers and timestamps. */
  generation: number;
  /** The first packet of a keyframe a decoder can start from. */
  keyframeStart: boolean;
}

export type PacketListener = (p: EncodedPacket) => void;

export interface EncoderOptions {
  codec: Codec;
  display: { name: string; authFile: string };
  width: number;
  height: number;
  fps?: number;
  ffmpegPath?: string;
  logger: Logger;
  /** Told about every ffmpeg started (pid) and reaped (null): tests and a pid registry watch it. */
  onProcess?: (pid: number | null) => void;
}

/**
 * One codec's encoder for one session: ffmpeg grabbing the display and sending RTP to a
 * loopback UDP socket of ours. It runs from construction to close(); the hub creates it for
 * the first viewer of its codec and closes it when the last one leaves (neko's "the encoder
 * lives only while someone watches").
 *
 * If ffmpeg dies (or stops sending) while the encoder is open it is started again after a
 * backoff; the new run gets the next `generation`, its first packet is a keyframe, and
 * viewers continue (RtpRewriter keeps their stream continuous).
 */
export class FfmpegEncoder {
  readonly codec: Codec;
  private readonly fps: number;
  private readonly payloadType: number;
  private readonly log: Logger;
  private readonly listeners = new Set<PacketListener>();
  private readonly gop = new GopBuffer<EncodedPacket>();
  private socket?: Socket;
  private port = 0;
  private proc?: LaunchedProcess;
  private generation = 0;
  /** ffmpeg's source port for this run: packets from anywhere else on loopback are not ours. */
  private sourcePort?: number;
  private runStartedAt = 0;
  private lastPacketAt = 0;
  private lastKeyframeAt = 0;
  private lastKeyframeRestart = -Infinity;
  private failures = 0;
  private restartTimer?: NodeJS.Timeout;
  private watchdog?: NodeJS.Timeout;
  private closing?: Promise<void>;
  private ready: Promise<void>;

  constructor(private readonly opts: EncoderOptions) {
    this.codec = opts.codec;
    this.fps = opts.fps ?? DEFAULT_FPS;
    this.payloadType = FFMPEG_PAYLOAD_TYPE[opts.codec];
    this.log = opts.logger.child({ codec: opts.codec });
    this.ready = this.bind().then(
      () => this.launch(),
      (e) => this.log.error('webrtc encoder socket failed', { err: (e as Error).message }),
    );
    this.watchdog = setInterval(() => this.checkStall(), 1000);
    this.watchdog.unref();
  }

  /** The running ffmpeg's pid, if one runs now. */
  get pid(): number | null {
    return this.proc && !this.proc.hasExited ? this.proc.pid : null;
  }
  get listenerCount(): number {
    return this.listeners.size;
  }
  get closed(): boolean {
    return this.closing !== undefined;
  }

  /**
   * The current group of pictures (see GopBuffer): a viewer that connects while the encoder
   * runs starts from it instead of waiting up to a second for the next keyframe.
   */
  currentGop(): readonly EncodedPacket[] {
    return this.gop.snapshot();
  }

  subscribe(listener: PacketListener): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /**
   * A viewer's PLI/FIR (already rate limited per viewer). ffmpeg cannot be told to make a
   * keyframe, and the GOP brings one within a second, so normally this does nothing. Only
   * when keyframes are overdue (ffmpeg wedged) is ffmpeg restarted, whose first frame is one;
   * at most every KEYFRAME_RESTART_MIN_INTERVAL_MS.
   */
  requestKeyframe(): void {
    if (this.closing || !this.proc || this.proc.hasExited) return;
    const now = performance.now();
    const gopMs = 1000; // ffmpegArgs: -g fps
    const since = Math.max(this.lastKeyframeAt, this.runStartedAt);
    if (now - since < 3 * gopMs) return;
    if (now - this.lastKeyframeRestart < KEYFRAME_RESTART_MIN_INTERVAL_MS) return;
    this.lastKeyframeRestart = now;
    this.log.warn('webrtc encoder sent no keyframe for a while; restarting it', { sinceMs: Math.round(now - since) });
    void this.proc.close(500);
  }

  private bind(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = createSocket('udp4');
      s.once('error', reject);
      s.bind(0, '127.0.0.1', () => {
        s.off('error', reject);
        // An error after binding (none expected on a receive-only socket) must not crash us.
        s.on('error', (e) => this.log.warn('webrtc encoder socket error', { err: e.message }));
        s.on('message', (msg, rinfo) => this.onPacket(msg, rinfo));
        // A 720p keyframe is a burst of 100+ packets; the default buffer (~200 KB) overflows
        // when the event loop is busy for a moment. The kernel caps this at net.core.rmem_max.
        try {
          s.setRecvBufferSize(RECV_BUFFER_BYTES);
        } catch {
          // Kept at the default: losses then show as NACKs and a later keyframe.
        }
        this.socket = s;
        this.port = s.address().port;
        resolve();
      });
    });
  }

  private launch(): void {
    if (this.closing || !this.socket) return;
    const args = ffmpegArgs({ codec: this.codec, display: this.opts.display.name, width: this.opts.width, height: this.opts.height, fps: this.fps, port: this.port });
    this.generation++;
    this.sourcePort = undefined;
    this.runStartedAt = performance.now();
    this.lastPacketAt = 0;
    const { display } = this.opts;
    let cmd: { cmd: string; args: string[] };
    try {
      // Sandboxed: it sees the display and nothing of the host's files; RTP goes out over loopback.
      cmd = sandboxed(this.opts.ffmpegPath ?? 'ffmpeg', args, {
        readable: displayClientPaths(display),
        env: { PATH: SANDBOX_PATH, HOME: '/tmp', DISPLAY: display.name, XAUTHORITY: display.authFile, ...localeEnv() },
      });
    } catch (e) {
      this.log.error('webrtc encoder cannot start', { err: (e as Error).message });
      return;
    }
    const proc = launchProcess(cmd.cmd, cmd.args, { env: {}, logger: this.log });
    this.proc = proc;
    this.log.debug('webrtc encoder started', { pid: proc.pid, generation: this.generation });
    if (this.generation > 1) processRestarts.inc({ kind: 'encoder' });
    this.opts.onProcess?.(proc.pid);
    void proc.exited.then((code) => {
      this.opts.onProcess?.(null);
      if (this.closing || this.proc !== proc) return;
      this.died(proc, code);
    });
  }

  private died(proc: LaunchedProcess, code: number | string): void {
    // Reap the group (anything ffmpeg left behind) before starting another.
    void proc.close(0);
    const ranMs = performance.now() - this.runStartedAt;
    this.failures = ranMs >= RESET_AFTER_MS ? 1 : this.failures + 1;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (this.failures - 1));
    this.log.warn('webrtc encoder exited; restarting', { code, ranMs: Math.round(ranMs), restartInMs: delay, stderr: proc.stderrTail().slice(-500) });
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      this.launch();
    }, delay);
  }

  private checkStall(): void {
    const proc = this.proc;
    if (this.closing || !proc || proc.hasExited) return;
    const since = this.lastPacketAt || this.runStartedAt;
    if (performance.now() - since > STALL_MS) {
      this.log.warn('webrtc encoder stalled; restarting it', { generation: this.generation });
      // Its exit goes through died(): the same backoff as a crash.
      void proc.close(500);
    }
  }

  private onPacket(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closing || rinfo.address !== '127.0.0.1') return;
    // The first sender of this run is ffmpeg (it starts sending within milliseconds); anyone
    // else on loopback who guesses the port cannot inject pictures after that.
    this.sourcePort ??= rinfo.port;
    if (rinfo.port !== this.sourcePort) return;
    const info = parseRtp(msg);
    if (!info || info.payloadType !== this.payloadType) return;
    const now = performance.now();
    this.lastPacketAt = now;
    const kf = keyframeStart(this.codec, msg.subarray(info.payloadOffset, info.payloadEnd));
    if (kf) {
      this.lastKeyframeAt = now;
      if (this.failures > 0 && now - this.runStartedAt >= RESET_AFTER_MS) this.failures = 0;
    }
    const packet: EncodedPacket = { data: msg, info, generation: this.generation, keyframeStart: kf };
    this.gop.add(packet);
    for (const l of this.listeners) {
      try {
        l(packet);
      } catch (e) {
        this.log.warn('webrtc packet listener failed', { err: (e as Error).message });
      }
    }
  }

  /** Stops ffmpeg (awaiting its exit) and the socket. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.restartTimer);
      clearInterval(this.watchdog);
      this.listeners.clear();
      this.gop.clear();
      await this.ready;
      await this.proc?.close(1000);
      await new Promise<void>((r) => (this.socket ? this.socket.close(() => r()) : r()));
      this.log.debug('webrtc encoder stopped');
    })();
    return this.closing;
  }
}

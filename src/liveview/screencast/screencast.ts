import type { WebSocket } from 'ws';
import type { FrameSubscriber, Rect } from '../../display/types.js';
import type { ViewerHandle, ViewerSession } from '../types.js';
import type { Logger } from '../../util/logger.js';
import { isHandoffError } from '../../util/errors.js';
import { noPlaceMessage, placesFor, refuseSocket } from '../viewer-socket.js';
import type { LinkKind } from '../tokens.js';
import { ViewerMeter } from '../../metrics/liveview.js';
import { bgrxToRgb, sharpJpeg, type JpegEncoder, type RgbPixels } from './jpeg.js';
import { CLOSE_INTERNAL, CLOSE_NETWORK_NOT_ALLOWED, CLOSE_SESSION_ENDED, CLOSE_TOO_MANY_VIEWERS } from './protocol.js';
import { QUALITY_LADDER, ScreencastViewer, type AckInfo, type EncodedTile, type ViewerHost } from './viewer.js';
import { AtlasPool, atlasFits, buildAtlas, type AtlasEntry } from './atlas.js';

export interface ScreencastOptions {
  /** The JPEG encoder (tests wrap it to count encodes). */
  encoder?: JpegEncoder;
  /** Frame rate cap for every viewer. */
  maxFps?: number;
  /** Viewers at once; 10 by default, like WebRTC (API.md 5, issue 8 item 9). */
  maxViewers?: number;
  /** Every acked frame (the bench and tests watch the adaptation through it). */
  onAck?: (info: AckInfo) => void;
}

export const DEFAULT_MAX_VIEWERS = 10;

/** What a page animates at; the atlas keeps a frame's cost to the pixels that changed. */
const DEFAULT_MAX_FPS = 60;
/** A changed region covering at least this share of the screen goes out as one full frame. */
const FULL_FRAME_SHARE = 0.5;
/** Tiles per changed-region update, at most. */
const MAX_TILES = 6;
/**
 * The same for atlas frames: rects cost no encode of their own there, only 16 bytes, so more of
 * them are worth keeping exact, and only a change covering nearly all the screen is a full frame.
 */
const ATLAS_FULL_FRAME_SHARE = 0.85;
const ATLAS_MAX_RECTS = 40;
/**
 * Distinct encode settings (ladder rung and format) in one tick, at most (review M2): viewers
 * asking for many qualities (a view link holds several sockets) must not multiply the encodes.
 * A viewer past the cap shares the nearest setting in use; viewers of control links choose first.
 */
export const MAX_ENCODE_SETTINGS = 3;
/** How often a viewer held back only by its socket buffer is looked at again (no drain event in ws). */
const BUFFER_POLL_MS = 50;

/** One encode setting of a tick: a QUALITY_LADDER rung, as atlas frames or as tiles (full size). */
interface Setting {
  rung: number;
  atlas: boolean;
  /** The priority of the viewer that brought it in this tick. */
  priority: number;
}

/** Viewers that need the same pixels at the same quality: one encode, sent to each. */
interface Group {
  quality: number;
  /** Atlas frames (kind 3) at this scale, or tiles (kinds 1 and 2; scale 1). */
  atlas: boolean;
  scale: 1 | 0.5;
  rects: Rect[];
  viewers: ScreencastViewer[];
}

/**
 * The screencast transport of one session (docs/screencast-protocol.md): JPEG pictures of the
 * session's framebuffer over WebSocket, input back as JSON.
 *
 * Like Playwright's screencast.ts, the first viewer starts the work and the last one stops it:
 * there is one FrameSubscriber only while someone watches. Frames are produced in ticks (at
 * most maxFps per second, never two at once). A tick takes the new dirty rects once and adds
 * them to every viewer's own pending region; the viewers that may receive a frame (ack window
 * and socket buffer permitting) are grouped by quality and pending region, and each group gets
 * one encode. Viewers in step share a group; a viewer that fell behind has a larger pending
 * region and gets exactly what it missed when it is ready again, so a slow viewer costs the
 * others nothing and memory stays bounded (a tile bitmap and two frames in flight per viewer).
 */
export class Screencast implements ViewerHost {
  private readonly viewers = new Set<ScreencastViewer>();
  private readonly encoder: JpegEncoder;
  private readonly minIntervalMs: number;
  readonly maxViewers: number;
  private readonly width: number;
  private readonly height: number;
  private sub?: FrameSubscriber;
  private stopStateListener?: () => void;
  private tickTimer?: NodeJS.Timeout;
  private pollTimer?: NodeJS.Timeout;
  private lastTick = -Infinity;
  private ticking?: Promise<void>;
  /** A pump arrived while a tick was encoding: pump again when it ends. */
  private again = false;
  /** Bumped whenever the screen changes; keys the full-frame cache. */
  private version = 0;
  private fullCache = new Map<string, { version: number; jpeg: Buffer; entries?: AtlasEntry[] }>();
  private readonly onAck?: (info: AckInfo) => void;
  private readonly atlasPool = new AtlasPool();
  private nextViewerId = 1;
  private closing?: Promise<void>;
  /** Encode times for /metrics (per JPEG, shared by the viewers that get it). */
  private readonly meter: ViewerMeter;

  constructor(
    readonly session: ViewerSession,
    private readonly logger: Logger,
    opts: ScreencastOptions = {},
  ) {
    this.encoder = opts.encoder ?? sharpJpeg;
    this.minIntervalMs = 1000 / (opts.maxFps ?? DEFAULT_MAX_FPS);
    this.maxViewers = opts.maxViewers ?? DEFAULT_MAX_VIEWERS;
    this.onAck = opts.onAck;
    this.width = session.framebuffer.width;
    this.height = session.framebuffer.height;
    this.meter = new ViewerMeter('screencast', session.sessionId);
  }

  get viewerCount(): number {
    return this.viewers.size;
  }

  /**
   * Serves one viewer on an open `ws` WebSocket. Like WebRTC, a place among maxViewers is taken
   * before `join` (session.join) registers the viewer, so a refused viewer (close 4029
   * too_many_viewers) leaves no trace in the session: no attach, no handoff started.
   */
  addViewer(ws: WebSocket, join: () => ViewerHandle, link: LinkKind = 'control'): void {
    if (this.closing || ws.readyState !== ws.OPEN) {
      if (ws.readyState === ws.OPEN) {
        ws.send(JSON.stringify({ type: 'ended', reason: 'session stopped' }));
        ws.close(CLOSE_SESSION_ENDED, 'session stopped');
      }
      return;
    }
    // A view link cannot take the places kept for control links (viewer-socket.ts).
    if (this.viewers.size >= placesFor(link, this.maxViewers)) {
      return refuse(ws, CLOSE_TOO_MANY_VIEWERS, 'too_many_viewers', noPlaceMessage(link, this.maxViewers, 'screencast'));
    }
    let handle: ViewerHandle;
    try {
      handle = join();
    } catch (e) {
      if (isHandoffError(e) && e.code === 'network_not_allowed') return refuse(ws, CLOSE_NETWORK_NOT_ALLOWED, e.code, e.message);
      this.logger.warn('screencast viewer could not join', { err: (e as Error).message });
      return refuse(ws, CLOSE_INTERNAL, 'internal', 'internal error');
    }
    const v = new ScreencastViewer(ws, handle, this, this.logger.child({ viewer: this.nextViewerId++ }), this.width, this.height);
    if (this.viewers.size === 0 && !this.start(v)) return;
    this.viewers.add(v);
    v.hello(this.width, this.height);
    this.pump();
  }

  /** First viewer: subscribe to the framebuffer and to the session's viewer state. */
  private start(v: ScreencastViewer): boolean {
    try {
      this.sub = this.session.framebuffer.subscribe();
    } catch (e) {
      this.logger.warn('screencast cannot watch the framebuffer', { err: (e as Error).message });
      void v.end(CLOSE_SESSION_ENDED, 'session stopped');
      return false;
    }
    this.sub.onDirty(() => this.pump());
    this.stopStateListener = this.session.onViewerStateChange(() => {
      for (const viewer of this.viewers) viewer.sendState();
    });
    this.logger.debug('screencast started');
    return true;
  }

  /** Last viewer gone: no viewer, no work. */
  private stop(): void {
    if (this.sub) this.logger.debug('screencast stopped');
    this.sub?.close();
    this.sub = undefined;
    this.stopStateListener?.();
    this.stopStateListener = undefined;
    clearTimeout(this.tickTimer);
    clearTimeout(this.pollTimer);
    this.tickTimer = this.pollTimer = undefined;
    this.fullCache.clear();
    this.atlasPool.clear();
  }

  /** @internal ViewerHost */
  viewerClosed(v: ScreencastViewer): void {
    if (this.viewers.delete(v) && this.viewers.size === 0) this.stop();
  }

  /** @internal ViewerHost */
  acked(_v: ScreencastViewer, info: AckInfo): void {
    this.onAck?.(info);
  }

  /** @internal ViewerHost: something a frame depends on changed; a tick runs when allowed. */
  pump(): void {
    if (!this.sub) return;
    if (this.ticking) {
      this.again = true;
      return;
    }
    if (this.tickTimer) return;
    const wait = this.lastTick + this.minIntervalMs - performance.now();
    if (wait > 0) {
      this.tickTimer = setTimeout(() => {
        this.tickTimer = undefined;
        this.tick();
      }, wait);
      return;
    }
    this.tick();
  }

  private tick(): void {
    const sub = this.sub;
    if (!sub) return;
    let anyReady = false;
    let anyBuffered = false;
    for (const v of this.viewers) {
      const r = v.readiness();
      if (r === 'ready') anyReady = true;
      else if (r === 'buffer') anyBuffered = true;
    }
    if (anyBuffered && !this.pollTimer) {
      this.pollTimer = setTimeout(() => {
        this.pollTimer = undefined;
        this.pump();
      }, BUFFER_POLL_MS);
    }
    // Nobody can take a frame: leave the dirt in the subscriber (it will not wake us again
    // until taken), an ack or a drained buffer pumps again.
    if (!anyReady) return;
    const dirty = sub.takeDirty();
    if (dirty.length > 0) {
      this.version++;
      for (const v of this.viewers) {
        for (const r of dirty) v.pending.add(r);
        v.meter.damage();
        // Merged into a later frame for a viewer that cannot take one now.
        if (v.readiness() !== 'ready') v.meter.dropped();
      }
    }
    const groups = this.plan();
    if (groups.length === 0) return;
    this.lastTick = performance.now();
    this.ticking = this.encodeAndSend(sub, groups)
      .catch((e) => {
        // Not even planned to the end: these viewers owe the whole picture.
        this.logger.error('screencast frame failed', { err: (e as Error).message });
        for (const g of groups) for (const v of g.viewers) v.pending.addAll();
        this.again = true;
      })
      .finally(() => {
        this.ticking = undefined;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  /**
   * Groups the ready viewers with something to see by encode setting (at most
   * MAX_ENCODE_SETTINGS of them) and pending region.
   */
  private plan(): Group[] {
    const ready = [...this.viewers].filter((v) => !v.pending.empty && v.readiness() === 'ready');
    // Stable: in joining order within each priority. A view link cannot push the human in
    // control off the picture they get.
    ready.sort((a, b) => b.priority - a.priority);
    const settings: Setting[] = [];
    const chosen = ready.map((v) => {
      const own = settings.find((s) => s.rung === v.encodeRung && s.atlas === v.atlas);
      if (own) return own;
      if (settings.length < MAX_ENCODE_SETTINGS) {
        const s = { rung: v.encodeRung, atlas: v.atlas, priority: v.priority };
        settings.push(s);
        return s;
      }
      return nearestSetting(settings, v);
    });
    const byKey = new Map<string, Group>();
    ready.forEach((v, i) => {
      const s = chosen[i];
      if (!s) return; // waits, its changes kept, for a tick with a setting it may take
      const { quality, scale: rungScale } = QUALITY_LADDER[s.rung]!;
      const scale = s.atlas ? rungScale : 1;
      const key = `${quality}|${s.atlas ? `a${scale}` : 't'}|${v.pending.key()}`;
      let g = byKey.get(key);
      if (!g) {
        g = { quality, atlas: s.atlas, scale, rects: this.rectsFor(v, s.atlas, scale), viewers: [] };
        byKey.set(key, g);
      }
      g.viewers.push(v);
      // From here on the viewer owes only what changes after this snapshot.
      v.pending.clear();
    });
    return [...byKey.values()];
  }

  /** A full frame, or a few tiles (or an atlas of rects) when they cover little of the screen. */
  private rectsFor(v: ScreencastViewer, atlas: boolean, scale: 1 | 0.5): Rect[] {
    const full = [{ x: 0, y: 0, width: this.width, height: this.height }];
    const screen = this.width * this.height;
    if (v.pending.full) return full;
    const rects = v.pending.rects(atlas ? ATLAS_MAX_RECTS : MAX_TILES);
    if (!rects) return full;
    const area = rects.reduce((n, r) => n + r.width * r.height, 0);
    if (area >= (atlas ? ATLAS_FULL_FRAME_SHARE : FULL_FRAME_SHARE) * screen) return full;
    // Many rects can pack taller than the screen: then the full frame is smaller (L2).
    if (atlas && !atlasFits(rects, this.width, this.height, scale)) return full;
    return rects;
  }

  /**
   * Copies the pixels synchronously (FrameView.data is only valid this turn), then encodes
   * each distinct (rect, quality) once, concurrently on sharp's threads.
   */
  private async encodeAndSend(sub: FrameSubscriber, groups: Group[]): Promise<void> {
    const frame = sub.frame();
    const takenAt = performance.now();
    const version = this.version;
    const pixels = new Map<string, RgbPixels>();
    const jobs = new Map<string, Promise<Buffer>>();
    const isFull = (r: Rect) => r.x === 0 && r.y === 0 && r.width === this.width && r.height === this.height;
    const atlases = groups.map((g) => (g.atlas ? this.atlasJob(frame, g, version) : null));
    const tiles = groups.map((g) =>
      g.atlas ? [] : g.rects.map((rect) => {
        const rk = `${rect.x},${rect.y},${rect.width},${rect.height}`;
        const jk = `${g.quality}|${rk}`;
        let job = jobs.get(jk);
        if (!job) {
          const cached = isFull(rect) ? this.fullCache.get(`t${g.quality}`) : undefined;
          if (cached && cached.version === version) {
            job = Promise.resolve(cached.jpeg);
          } else {
            let px = pixels.get(rk);
            if (!px) pixels.set(rk, (px = bgrxToRgb(frame, rect)));
            job = this.encode(px, g.quality);
            if (isFull(rect)) {
              const quality = g.quality;
              // A viewer joining an unchanged screen later gets this one without an encode.
              job.then(
                (jpeg) => void this.fullCache.set(`t${quality}`, { version, jpeg }),
                () => {},
              );
            }
          }
          jobs.set(jk, job);
        }
        return job.then((jpeg): EncodedTile => ({ rect, jpeg }));
      }),
    );
    // Pixels of older versions are never asked for again.
    for (const [q, c] of this.fullCache) if (c.version !== version) this.fullCache.delete(q);
    await Promise.all(
      groups.map(async (g, i) => {
        try {
          const atlas = atlases[i];
          if (atlas) {
            const { entries, jpeg } = await atlas;
            for (const v of g.viewers) v.sendAtlas(entries, jpeg, takenAt, g.quality, g.scale);
            return;
          }
          const encoded = await Promise.all(tiles[i]!);
          for (const v of g.viewers) v.sendFrame(encoded, takenAt, g.quality);
        } catch (e) {
          // Not sent: these viewers still owe the region; the next tick (rate-capped) retries it.
          this.logger.warn('screencast encode failed', { err: (e as Error).message });
          for (const v of g.viewers) for (const r of g.rects) v.pending.add(r);
          this.again = true;
        }
      }),
    );
  }

  /**
   * One JPEG for a whole atlas frame: the group's rects packed (and scaled) into one picture.
   * Groups of the same rects, quality and scale are one group already; full frames are cached
   * like tiles' so a viewer joining an unchanged screen costs no encode.
   */
  private async atlasJob(frame: ReturnType<FrameSubscriber['frame']>, g: Group, version: number): Promise<{ entries: AtlasEntry[]; jpeg: Buffer }> {
    const full = g.rects.length === 1 && g.rects[0]!.width === this.width && g.rects[0]!.height === this.height;
    const key = `a${g.scale}|${g.quality}`;
    const cached = full ? this.fullCache.get(key) : undefined;
    if (cached && cached.version === version && cached.entries) return { entries: cached.entries, jpeg: cached.jpeg };
    // Synchronous up to here: the frame's pixels are only valid this turn.
    const atlas = buildAtlas(frame, g.rects, g.scale, this.atlasPool);
    let jpeg: Buffer;
    try {
      jpeg = await this.encode(atlas.pixels, g.quality);
    } finally {
      this.atlasPool.give(atlas.pixels.data);
    }
    if (full) this.fullCache.set(key, { version, jpeg, entries: atlas.entries });
    return { entries: atlas.entries, jpeg };
  }

  /** The encoder as a promise even if it throws synchronously (sharp validates its input eagerly). */
  private encode(px: RgbPixels, quality: number): Promise<Buffer> {
    try {
      const start = performance.now();
      const job = this.encoder(px, quality);
      job.then(() => this.meter.encoded((performance.now() - start) / 1000), () => {});
      return job;
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /**
   * Closes every viewer socket (code 4000 and `reason` by default, after an `ended` message)
   * and stops encoding. Idempotent.
   */
  close(code: number = CLOSE_SESSION_ENDED, reason = 'session stopped'): Promise<void> {
    this.closing ??= (async () => {
      const viewers = [...this.viewers];
      // Viewers of one screencast are peers: they close together.
      await Promise.all(viewers.map((v) => v.end(code, reason)));
      this.stop();
      await this.ticking;
    })();
    return this.closing;
  }
}

const refuse = refuseSocket;

/**
 * The setting in use nearest to the viewer's own rung (a tie goes to the better picture), for a
 * viewer past MAX_ENCODE_SETTINGS. An atlas viewer also takes tiles; a viewer that takes only
 * tiles and finds only atlas settings turns the nearest one into tiles at full size (its other
 * viewers take tiles too), so the cap holds whatever the mix; only a setting a viewer of no
 * higher priority brought in (a view link never changes the picture of the human in control).
 * Null: none such this tick.
 */
function nearestSetting(settings: Setting[], v: ScreencastViewer): Setting | null {
  const want = v.encodeRung;
  const byDistance = (list: Setting[]) => list.reduce((a, b) => (Math.abs(b.rung - want) < Math.abs(a.rung - want) || (Math.abs(b.rung - want) === Math.abs(a.rung - want) && b.rung < a.rung) ? b : a));
  if (v.atlas) return byDistance(settings);
  const tiles = settings.filter((s) => !s.atlas);
  if (tiles.length > 0) return byDistance(tiles);
  const own = settings.filter((s) => s.priority <= v.priority);
  if (own.length === 0) return null;
  const s = byDistance(own);
  s.atlas = false;
  // Tiles are full size: a half-size rung becomes the lowest full-size one.
  while (QUALITY_LADDER[s.rung]!.scale !== 1) s.rung--;
  return s;
}

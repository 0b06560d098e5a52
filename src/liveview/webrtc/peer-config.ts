import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { RTCRtpCodecParameters, RTCRtpHeaderExtensionParameters, useFIR, useNACK, usePLI, type RTCPeerConnectionConfig } from 'werift';
import { PLAYOUT_DELAY_URI } from './rtp.js';
import type { Codec } from './protocol.js';
import { h264Level, h264ProfileLevelId } from './encoder.js';

/** The id our offers give the playout-delay extension (RFC 8285 one-byte ids are 1-14). */
export const PLAYOUT_DELAY_EXT_ID = 6;

/** The id the viewer's answer accepted for the playout-delay extension, or null (not supported). */
export function playoutDelayId(answerSdp: string): number | null {
  for (const line of answerSdp.split(/\r?\n/)) {
    // a=extmap:<id>[/<direction>] <uri> (RFC 8285 8)
    const m = /^a=extmap:(\d+)(?:\/\w+)?\s+(\S+)/.exec(line);
    if (m && m[2] === PLAYOUT_DELAY_URI) return Number(m[1]);
  }
  return null;
}

export interface IceSettings {
  /** The address host candidates are gathered on: an IP (after resolveHost). */
  host: string;
  portRange: { min: number; max: number } | null;
  iceServers: { urls: string; username?: string; credential?: string }[];
}

/**
 * What the daemon's --host means for ICE: a name is resolved once; the wildcard addresses
 * mean "every interface" (werift's own enumeration).
 */
export async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  if (host === 'localhost') return '127.0.0.1';
  return (await lookup(host, { family: 4 }).catch(() => lookup(host))).address;
}

/** The one codec a viewer's connection offers (one track per viewer, of the encoder it watches). */
export function codecParameters(codec: Codec, width: number, height: number, fps: number): RTCRtpCodecParameters {
  // NACK: werift resends from its per-sender history; PLI/FIR reach us as keyframe requests.
  const rtcpFeedback = [useNACK(), usePLI(), useFIR()];
  if (codec === 'H264') {
    return new RTCRtpCodecParameters({
      mimeType: 'video/H264',
      clockRate: 90000,
      rtcpFeedback,
      // Mode 1 is what ffmpeg sends (FU-A, STAP-A); the level matches the one x264 is given.
      parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${h264ProfileLevelId(h264Level(width, height, fps))}`,
    });
  }
  return new RTCRtpCodecParameters({ mimeType: 'video/VP8', clockRate: 90000, rtcpFeedback });
}

/**
 * werift settings for one viewer's peer connection. ICE gathers host candidates on the
 * daemon's address only (not every interface: a daemon bound to one address must not offer
 * media on the others), in --rtc-ports when set, and asks STUN/TURN servers only when the
 * operator configured some: werift's default Google STUN server is replaced by the list we
 * are given, usually empty (DESIGN.md: no default STUN for an air-gapped host).
 */
export function peerConfig(ice: IceSettings, codec: RTCRtpCodecParameters): RTCPeerConnectionConfig {
  const wildcard = ice.host === '0.0.0.0' || ice.host === '::';
  const v6 = isIP(ice.host) === 6;
  return {
    codecs: { video: [codec], audio: [] },
    // Only playout-delay (see rtp.ts): werift writes it as we put it in each packet.
    headerExtensions: { video: [new RTCRtpHeaderExtensionParameters({ id: PLAYOUT_DELAY_EXT_ID, uri: PLAYOUT_DELAY_URI })], audio: [] },
    iceServers: ice.iceServers.map((s) => ({ urls: s.urls, username: s.username, credential: s.credential })),
    icePortRange: ice.portRange ? [ice.portRange.min, ice.portRange.max] : undefined,
    ...(wildcard
      ? { iceUseIpv4: true, iceUseIpv6: ice.host === '::' }
      : {
          // werift's interface enumeration is off; the one address we want is "additional",
          // and the sockets are bound to it (werift binds to the wildcard otherwise).
          iceUseIpv4: false,
          iceUseIpv6: false,
          iceAdditionalHostAddresses: [ice.host],
          iceInterfaceAddresses: v6 ? { udp6: ice.host } : { udp4: ice.host },
        }),
    // One transport for the video and the input DataChannel: one port per viewer.
    bundlePolicy: 'max-bundle',
  };
}

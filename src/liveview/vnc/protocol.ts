/** RFB wire constants (RFC 6143 7.5, 7.6, 7.7, 7.8) and small writers shared by the modules. */

export const ClientMessage = {
  SetPixelFormat: 0,
  SetEncodings: 2,
  FramebufferUpdateRequest: 3,
  KeyEvent: 4,
  PointerEvent: 5,
  ClientCutText: 6,
  /** ContinuousUpdates extension (rfbproto "EnableContinuousUpdates"). */
  EnableContinuousUpdates: 150,
  /** Fence extension (rfbproto "ClientFence"). */
  Fence: 248,
  /** ExtendedDesktopSize extension (rfbproto "SetDesktopSize"). */
  SetDesktopSize: 251,
} as const;

export const ServerMessage = {
  FramebufferUpdate: 0,
  SetColourMapEntries: 1,
  ServerCutText: 3,
  /** rfbproto "EndOfContinuousUpdates": also how a server says it supports them. */
  EndOfContinuousUpdates: 150,
  /** rfbproto "ServerFence". */
  Fence: 248,
} as const;

/** rfbproto Fence flags; bit 31 marks a request, a response echoes the flags it honoured. */
export const FenceFlag = {
  BlockBefore: 1 << 0,
  BlockAfter: 1 << 1,
  SyncNext: 1 << 2,
  Request: 0x80000000,
} as const;

/** rfbproto: a fence payload is at most 64 bytes. */
export const MAX_FENCE_PAYLOAD = 64;

export const Encoding = {
  Raw: 0,
  CopyRect: 1,
  Hextile: 5,
  Tight: 7,
  ZRLE: 16,
  /** rfbproto Cursor: the client draws the pointer itself from a shape we send. */
  Cursor: -239,
  DesktopSize: -223,
  LastRect: -224,
  DesktopName: -307,
  ExtendedDesktopSize: -308,
  Fence: -312,
  ContinuousUpdates: -313,
  /** -32 is JPEG quality level 0 ... -23 is level 9 (Tight). */
  QualityLevel0: -32,
  QualityLevel9: -23,
  /** -256 is zlib compression level 0 ... -247 is level 9. */
  CompressLevel0: -256,
  CompressLevel9: -247,
} as const;

export const SecurityType = { Invalid: 0, VncAuthentication: 2 } as const;

/** RFC 6143 7.7: the rectangle header preceding every encoded rectangle. */
export function rectHeader(x: number, y: number, width: number, height: number, encoding: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(x, 0);
  b.writeUInt16BE(y, 2);
  b.writeUInt16BE(width, 4);
  b.writeUInt16BE(height, 6);
  b.writeInt32BE(encoding, 8);
  return b;
}

/** RFC 6143 7.1.3 / 7.3.2: a U32 length followed by the bytes. */
export function lengthPrefixed(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  const b = Buffer.alloc(4 + body.length);
  b.writeUInt32BE(body.length, 0);
  body.copy(b, 4);
  return b;
}

/** What the live-view tests read from a JPEG the daemon sent: its size and its quality. */

/** Size (SOF0) and the first DQT value of a baseline JPEG (ITU T.81 B.2). */
export function jpegInfo(jpeg: Buffer): { width: number; height: number; dcQuant: number } {
  let dcQuant = -1;
  for (let i = 2; i + 4 < jpeg.length; ) {
    if (jpeg[i] !== 0xff) throw new Error('not a JPEG marker');
    const marker = jpeg[i + 1]!;
    if (marker === 0xdb && dcQuant < 0) dcQuant = jpeg[i + 5]!;
    if (marker === 0xc0) return { height: jpeg.readUInt16BE(i + 5), width: jpeg.readUInt16BE(i + 7), dcQuant };
    i += 2 + jpeg.readUInt16BE(i + 2);
  }
  throw new Error('no SOF0');
}

/** libjpeg's scaling of the standard luminance table's DC entry (16) for a quality: tells the quality. */
export function dcQuantFor(quality: number): number {
  const scale = quality < 50 ? Math.floor(5000 / quality) : 200 - quality * 2;
  return Math.max(1, Math.floor((16 * scale + 50) / 100));
}

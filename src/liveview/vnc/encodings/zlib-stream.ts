import zlib from 'node:zlib';

/**
 * One deflate stream that lives as long as the connection: the client keeps one inflater per
 * stream, so ours is never reset; each call ends with Z_SYNC_FLUSH so the client can decode the
 * rectangle from the bytes it has (RFC 6143 7.7.6, rfbproto Tight).
 */
export class DeflateStream {
  private readonly z: zlib.Deflate;
  private out: Buffer[] = [];

  constructor(level = 6) {
    this.z = zlib.createDeflate({ level });
    this.z.on('data', (chunk: Buffer) => this.out.push(chunk));
    // A write after close() rejects through the callback; nothing else may throw.
    this.z.on('error', () => {});
  }

  /** Callers await each call before the next, so the output never interleaves. */
  compress(data: Buffer): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.z.write(data);
      this.z.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        if (this.z.destroyed) return reject(new Error('deflate stream closed'));
        const bytes = Buffer.concat(this.out);
        this.out = [];
        resolve(bytes);
      });
    });
  }

  close(): void {
    this.z.close();
  }
}

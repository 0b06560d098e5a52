import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/** At most `max` bytes of the file at `path` (a small key or token file), read in one go. */
export function readCapped(path: string, max: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const size = Math.min(fstatSync(fd).size, max);
    const buf = Buffer.alloc(size);
    let n = 0;
    while (n < size) {
      const r = readSync(fd, buf, n, size - n, n);
      if (r === 0) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

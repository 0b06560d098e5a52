import { describe, expect, it } from 'vitest';
import { safeFileName } from '../../../src/browser/control.js';

describe('safeFileName (downloads and uploads)', () => {
  it('cuts long names to 200 UTF-8 bytes on a code point, so a multibyte name stays under NAME_MAX (security review: 200 x € was a 500)', () => {
    const name = safeFileName('€'.repeat(200));
    expect(Buffer.byteLength(name)).toBeLessThanOrEqual(200);
    expect(name).toBe('€'.repeat(66));
    expect(safeFileName('😀'.repeat(100))).toBe('😀'.repeat(50));
  });

  it('keeps short names, strips path separators, control characters and leading dots', () => {
    expect(safeFileName('report.pdf')).toBe('report.pdf');
    expect(safeFileName('../x\u0001y')).toBe('_xy');
    expect(safeFileName('...')).toBe('download');
  });
});

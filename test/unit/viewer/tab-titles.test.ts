import { describe, expect, it } from 'vitest';
import { titleFromUrl } from '../../../src/liveview/viewer-socket.js';

// Review L4: what a view link must not see of a tab is its url, also when Chromium made the
// title from it (a page without <title>), in the form Chromium shows it.
describe('titleFromUrl', () => {
  it("drops Chromium's url titles in every form it shows them", () => {
    const cases: [string, string][] = [
      ['127.0.0.1:8080/private/area?token=abc', 'http://127.0.0.1:8080/private/area?token=abc'],
      ['example.com/p?token=a b', 'https://example.com/p?token=a%20b'],
      ['example.com/✓', 'https://example.com/%E2%9C%93'],
      ['example.com/secret', 'https://user:pw@example.com/secret'],
      ['café.example/x', 'https://xn--caf-dma.example/x'],
      ['data:text/html,<p>hi', 'data:text/html,<p>hi'],
      ['about:blank', 'about:blank'],
      // Both cut to 300 characters: the title still names the host.
      ['idp.example/callback?code=' + 'x'.repeat(280), 'https://idp.example/callback?code=' + 'x'.repeat(266)],
    ];
    for (const [title, url] of cases) expect(titleFromUrl(title, url), title).toBe(true);
  });

  it("keeps a page's own title", () => {
    expect(titleFromUrl('Quarterly report', 'https://example.com/reports/q3?token=abc')).toBe(false);
    expect(titleFromUrl('Sign in', 'https://idp.example/login')).toBe(false);
    expect(titleFromUrl('', 'https://example.com/')).toBe(false);
  });
});

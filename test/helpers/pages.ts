import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** The bytes of the file the download page offers (fixed so a test can hash them). */
export const DOWNLOAD_BYTES = Buffer.from('handoff download test\nline two: \u00e9\u00e8\n'.repeat(50), 'utf8');

const PAGES: Record<string, string> = {
  '/form': `<!doctype html><html><head><title>form</title></head><body style="margin:0;font:16px sans-serif">
    <button id="btn" onclick="out.textContent = 'clicked ' + (++window.clicks)">Click me</button>
    <input id="text" autocomplete="off">
    <div id="out">not clicked</div>
    <script>window.clicks = 0;</script>
  </body></html>`,
  '/download': `<!doctype html><html><head><title>download</title></head><body>
    <a id="dl" href="/file.txt" download="report.txt">get the report</a>
  </body></html>`,
  '/other': `<!doctype html><html><head><title>other</title></head><body><p id="p">other page</p></body></html>`,
};

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1:0 with the test pages: /form, /download, /file.txt, /other. */
export async function startPageServer(): Promise<PageServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (path === '/file.txt') {
      res.writeHead(200, {
        'content-type': 'text/plain; charset=utf-8',
        'content-length': DOWNLOAD_BYTES.length,
        'content-disposition': 'attachment; filename="report.txt"',
      });
      res.end(DOWNLOAD_BYTES);
      return;
    }
    const html = PAGES[path];
    if (!html) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

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
  // A login form: submitting navigates to /welcome (the agent waits for that navigation).
  '/login': `<!doctype html><html><head><title>login</title></head><body style="margin:0;font:20px sans-serif;background:#fff">
    <form action="/welcome" method="get" style="padding:40px">
      <input id="user" name="user" autocomplete="off" style="display:block;width:400px;height:40px;font-size:20px">
      <input id="pass" name="pass" type="password" style="display:block;width:400px;height:40px;margin-top:20px;font-size:20px">
      <button type="submit" style="margin-top:20px">Log in</button>
    </form></body></html>`,
  // A "captcha" a script cannot tick: only a trusted click counts.
  '/captcha': `<!doctype html><html><head><title>captcha</title></head><body style="margin:0;font:20px sans-serif">
    <label style="display:block;padding:40px"><input id="robot" type="checkbox" style="width:60px;height:60px"> I am not a robot</label>
    <div id="clicks" style="height:300px;background:rgb(0,160,0)">0</div>
    <script>
      window.trusted = 0;
      document.getElementById('robot').addEventListener('click', (e) => { if (!e.isTrusted) e.preventDefault(); else window.trusted++; });
      document.getElementById('clicks').addEventListener('click', (e) => { e.target.textContent = String(++window.trusted); });
    </script></body></html>`,
  '/other': `<!doctype html><html><head><title>other</title></head><body><p id="p">other page</p></body></html>`,
};

export interface PageServer {
  url: string;
  close(): Promise<void>;
}

/** A node:http server on 127.0.0.1:0 with the test pages: /form, /download, /file.txt, /login, /welcome, /captcha, /other. */
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
    if (path === '/welcome') {
      const user = new URL(req.url ?? '/', 'http://x').searchParams.get('user') ?? '';
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(`<!doctype html><title>welcome</title><h1 id="hello">Welcome ${user.replace(/[<&>"]/g, '')}</h1>`);
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

/** A site on 127.0.0.1:0 that answers every path with `html(path)` and records the paths asked for. */
export async function startHtmlSite(html: (path: string) => string): Promise<PageServer & { requests: string[] }> {
  const requests: string[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(req.url ?? '/');
    requests.push(path);
    res.writeHead(200, { 'content-type': 'text/html' }).end(html(path));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/**
 * The `<input id="f" type=file>` at 100,100 (400x80) and a script that reads every chosen
 * file back into `window.got` (one array of `{name, b64 | error}` per change) and counts
 * `cancel` events in `window.cancels`: the page side of the file-chooser tests.
 */
export const FILE_INPUT_HTML = `<input id="f" type="file" style="position:absolute;left:100px;top:100px;width:400px;height:80px">
<script>
  window.got = []; window.cancels = 0;
  const f = document.getElementById('f');
  f.addEventListener('cancel', () => window.cancels++);
  f.addEventListener('change', async () => {
    const out = [];
    for (const file of f.files) {
      try {
        const bytes = new Uint8Array(await file.arrayBuffer());
        let bin = '';
        for (let i = 0; i < bytes.length; i += 8192) bin += String.fromCharCode(...bytes.subarray(i, i + 8192));
        out.push({ name: file.name, b64: btoa(bin) });
      } catch (e) {
        out.push({ name: file.name, error: String(e) });
      }
    }
    window.got.push(out);
  });
</script>`;

import { HandoffError } from '../../util/errors.js';
import type { HttpServer } from '../server.js';
import type { Services } from './context.js';

/** The live view page. Until the viewer lands it names the session and says what to do. */
export function liveRoutes(http: HttpServer, s: Services): void {
  http.route(
    'GET',
    '/live/:token',
    (ctx, res) => {
      let title: string;
      let body: string;
      let status = 200;
      try {
        const { session } = s.liveLinks.resolve(ctx.params.token!, true);
        title = 'handoff live view';
        body = `<p>Session <code>${escapeHtml(session.id)}</code> is ${session.state}.</p>`;
      } catch (e) {
        if (!(e instanceof HandoffError)) throw e;
        status = e.code === 'link_expired' ? 410 : 404;
        title = e.code === 'link_expired' ? 'Link expired' : 'Session ended';
        body = `<p>${escapeHtml(e.message)}</p>`;
      }
      const state = status === 410 ? 'expired' : status === 200 ? 'connecting' : 'ended';
      const html = `<!doctype html><meta charset="utf-8"><title>${title}</title><main data-handoff-state="${state}"><h1>${title}</h1>${body}</main>`;
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    },
    true,
  );
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

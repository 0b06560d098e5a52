import { HandoffError } from '../../util/errors.js';
import { listUploads, MAX_UPLOAD_BYTES, storeUpload } from '../../sessions/uploads.js';
import { sendJson, type HttpServer } from '../server.js';
import { sessionById, type Services } from './context.js';

/** Longest upload name taken from the query (it is cut to 200 safe characters when stored). */
const MAX_NAME = 1024;

/**
 * API.md 4: an agent puts a file into the session's upload dir and gives the returned path to
 * setInputFiles (the browser's sandbox sees that dir, and only that one, at the same path).
 */
export function uploadRoutes(http: HttpServer, s: Services): void {
  http.route('POST', '/session/:id/uploads', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!, { live: true });
    const name = ctx.url.searchParams.get('name');
    if (!name || name.length > MAX_NAME) throw new HandoffError('bad_request', `name is required (at most ${MAX_NAME} characters)`);
    const declared = Number(ctx.req.headers['content-length'] ?? NaN);
    if (declared > MAX_UPLOAD_BYTES) throw new HandoffError('bad_request', `an upload is at most ${MAX_UPLOAD_BYTES} bytes`);
    const stored = await storeUpload(session.uploadDir, name, ctx.req as AsyncIterable<Buffer>, s.config.minFreeMb);
    session.audit({ type: 'file_uploaded', transport: 'rest', source_ip: ctx.sourceIp, actor: 'agent', detail: { name: stored.name, size: stored.size, sha256: stored.sha256, by: 'agent' } });
    sendJson(res, 200, stored);
  });

  http.route('GET', '/session/:id/uploads', async (ctx, res) => {
    const session = sessionById(s, ctx.params.id!);
    sendJson(res, 200, { files: await listUploads(session.uploadDir) });
  });
}

import type { ProfileStore } from '../../profiles/store.js';
import { sendJson, type HttpServer } from '../server.js';

/** API.md 4: the persistent profiles (profiles/store.ts). */
export function profileRoutes(http: HttpServer, profiles: ProfileStore): void {
  http.route('GET', '/profiles', async (_ctx, res) => {
    sendJson(res, 200, { profiles: await profiles.list() });
  });

  // 409 profile_in_use while a session uses it, 404 not_found when there is none.
  http.route('DELETE', '/profiles/:name', async (ctx, res) => {
    await profiles.delete(ctx.params.name!);
    sendJson(res, 200, { deleted: true });
  });
}

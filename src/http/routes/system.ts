import { HandoffError } from '../../util/errors.js';
import { AUDIT_TYPES } from '../../audit/log.js';
import { int } from '../../sessions/params.js';
import { sendJson, type HttpServer } from '../server.js';
import type { Services } from './context.js';
import type { WebhookStats } from '../../util/webhook.js';
import { daemonMetrics } from '../../metrics/daemon.js';

/** Health, Prometheus metrics and the audit query. */
export function systemRoutes(
  http: HttpServer,
  s: Services,
  {
    webhook = null,
    checkpoints = null,
    uncaughtErrors = () => 0,
  }: { webhook?: { stats(): WebhookStats } | null; checkpoints?: { problem: string | null } | null; uncaughtErrors?: () => number } = {},
): void {
  http.route(
    'GET',
    '/health',
    (_ctx, res) => {
      // While audit rows cannot be written, new sessions and attaches are refused (README
      // "Fault policy"): a monitor sees it here. Still 200: the daemon itself serves.
      const degraded = s.audit.degraded;
      sendJson(res, 200, {
        ok: degraded === null,
        // At --max-sessions: a load balancer sends new sessions elsewhere (deploy/haproxy).
        full: s.registry.liveCount() >= s.config.maxSessions,
        ...(degraded !== null ? { degraded: `audit: ${degraded}` } : {}),
        version: process.env.npm_package_version ?? '0.1.0',
        uptime_s: Math.round((Date.now() - s.startedAt) / 1000),
        sessions: s.registry.liveCount(),
        max_sessions: s.config.maxSessions,
        // The warm pool (--warm): spares started and waiting, and how many it keeps.
        warm: { spares: s.registry.warm.spares, target: s.registry.warm.target },
        browser: s.browserVersion,
        // The audit chain no longer reaches a checkpoint it had (rows deleted from its end).
        audit_truncated: !!checkpoints?.problem,
      });
    },
    true,
  );

  // The dashboard's other hosts (--peer); the page reads each with that host's key (deploy/README.md).
  http.route('GET', '/peers', (ctx, res) => sendJson(res, 200, { self: ctx.publicOrigin, peers: s.config.peers }));


  // Built once: its counters follow the audit rows from now on (src/metrics/daemon.ts).
  const metrics = daemonMetrics({
    audit: s.audit,
    sessions: () => s.registry.list().map((x) => ({ id: x.id, state: x.state, live: x.live, attachment: x.attachment, viewers: x.viewerState().viewers })),
    maxSessions: s.config.maxSessions,
    startedAt: s.startedAt,
    webhook: () => webhook?.stats() ?? { ok: 0, failed: 0, dropped: 0, pending: 0 },
    uncaughtErrors,
  });
  metrics.gauge('handoff_warm_spares', 'Spare sessions started and waiting (warm pool).', () => s.registry.warm.spares);
  metrics.gauge('handoff_warm_target', 'Spare sessions the warm pool keeps (--warm).', () => s.registry.warm.target);
  http.route('GET', '/metrics', (_ctx, res) => {
    const text = metrics.render();
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });

  http.route('GET', '/audit', (ctx, res) => {
    const q = ctx.url.searchParams;
    const type = q.get('type') ?? undefined;
    if (type && !(AUDIT_TYPES as readonly string[]).includes(type)) throw new HandoffError('bad_request', `unknown audit type "${type.slice(0, 60)}"`);
    const since = q.get('since') ?? undefined;
    if (since && !/^\d+$/.test(since) && Number.isNaN(Date.parse(since))) throw new HandoffError('bad_request', 'since must be an ISO time or an event id');
    const events = s.audit.query({
      session_id: q.get('session_id') ?? undefined,
      type,
      since: since && !/^\d+$/.test(since) ? new Date(since).toISOString() : since,
      limit: int(q, 'limit', 100, 1, 10_000),
    });
    sendJson(res, 200, { events });
  });
}

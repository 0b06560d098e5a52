import { HandoffError } from '../../util/errors.js';
import { AUDIT_TYPES } from '../../audit/log.js';
import { int } from '../../sessions/params.js';
import { sendJson, type HttpServer } from '../server.js';
import type { Services } from './context.js';
import type { WebhookStats } from '../../util/webhook.js';

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
        browser: s.browserVersion,
        // The audit chain no longer reaches a checkpoint it had (rows deleted from its end).
        audit_truncated: !!checkpoints?.problem,
      });
    },
    true,
  );

  // The dashboard's other hosts (--peer); the page reads each with that host's key (deploy/README.md).
  http.route('GET', '/peers', (ctx, res) => sendJson(res, 200, { self: ctx.publicOrigin, peers: s.config.peers }));

  http.route('GET', '/metrics', (_ctx, res) => {
    const sessions = s.registry.list();
    const lines: string[] = [];
    const gauge = (name: string, help: string, samples: [string, number][]) => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} gauge`);
      for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`);
    };
    const count = (pred: (x: (typeof sessions)[number]) => boolean) => sessions.filter(pred).length;
    gauge('handoff_sessions', 'Sessions by state.', (['starting', 'ready', 'stopped', 'crashed'] as const).map((st) => [`{state="${st}"}`, count((x) => x.state === st)]));
    gauge('handoff_attachments', 'Live sessions by attachment.', (['none', 'agent', 'human'] as const).map((a) => [`{attachment="${a}"}`, count((x) => x.live && x.lease.attachment === a)]));
    gauge('handoff_viewers', 'Human viewers by transport.', (['screencast', 'webrtc', 'vnc'] as const).map((t) => [`{transport="${t}"}`, sessions.reduce((n, x) => n + x.viewerState().viewers[t], 0)]));
    gauge('handoff_max_sessions', 'Configured session limit.', [['', s.config.maxSessions]]);
    gauge('handoff_process_resident_bytes', 'Daemon resident memory.', [['', process.memoryUsage().rss]]);
    gauge('handoff_uptime_seconds', 'Seconds since the daemon started.', [['', Math.round((Date.now() - s.startedAt) / 1000)]]);
    const hook = webhook?.stats() ?? { ok: 0, failed: 0, dropped: 0, pending: 0 };
    lines.push('# HELP handoff_webhook_deliveries_total Webhook events by final result (failed: after all retries; dropped: queue full or shutdown).', '# TYPE handoff_webhook_deliveries_total counter');
    for (const r of ['ok', 'failed', 'dropped'] as const) lines.push(`handoff_webhook_deliveries_total{result="${r}"} ${hook[r]}`);
    gauge('handoff_webhook_pending', 'Webhook events waiting to be sent.', [['', hook.pending]]);
    const counter = (name: string, help: string, value: number) => lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`, `${name} ${value}`);
    const audit = s.audit.stats();
    counter('handoff_audit_appends_total', 'Audit rows written to the database.', audit.appends);
    counter('handoff_audit_append_failures_total', 'Audit write attempts that failed (the rows wait in the retry queue).', audit.failures);
    counter('handoff_audit_dropped_total', 'Audit rows refused because the retry queue was full (each one is in the log in full).', audit.dropped);
    gauge('handoff_audit_queue_depth', 'Audit rows waiting to be written.', [['', audit.queued]]);
    counter('handoff_uncaught_errors_total', 'Errors that reached the last-resort uncaughtException/unhandledRejection handlers.', uncaughtErrors());
    const text = lines.join('\n') + '\n';
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

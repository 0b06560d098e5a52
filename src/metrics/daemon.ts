/**
 * What /metrics shows (API.md 8), in one place. Session, attach, auth and handoff counters are
 * derived from the audit rows as they are written (AuditLog.subscribe), so they count exactly
 * what the audit trail holds and no session code has to know about metrics.
 */
import { readdirSync } from 'node:fs';
import type { AuditEvent, AuditStats } from '../audit/log.js';
import { Counter, Histogram, MetricsRegistry, labelValue, type Labels } from './prometheus.js';
import { LIVE_VIEW_FAMILIES, pruneLiveViewSessions } from './liveview.js';
import { procStat } from '../util/process.js';

/**
 * Child processes restarted by the daemon on its own, by kind (the WebRTC encoder's ffmpeg);
 * module-wide because the code that restarts them has no handle on the daemon's services.
 */
export const processRestarts = new Counter('handoff_process_restarts_total', 'Child processes the daemon restarted after they died or stalled, by kind.', [{ kind: 'encoder' }]);

const TRANSPORTS = new Set(['cdp', 'screencast', 'webrtc', 'vnc', 'http', 'rest', 'mcp', 'viewer']);
const transport = (t: string | null) => (t && TRANSPORTS.has(t) ? t : t ? 'other' : 'none');
const actor = (a: string | null) => (a === 'agent' || a === 'human' ? a : 'other');

/** Handoffs last seconds to an hour (the longest timeout is a day: +Inf). */
const HANDOFF_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600];

export interface MetricsSources {
  audit: { subscribe(l: (e: AuditEvent) => void): () => void; stats(): AuditStats };
  sessions: () => { id?: string; state: string; live: boolean; attachment: string; viewers: Record<'screencast' | 'webrtc' | 'vnc', number> }[];
  maxSessions: number;
  startedAt: number;
  webhook: () => { ok: number; failed: number; dropped: number; pending: number };
  uncaughtErrors: () => number;
  /** Root of the process tree counted by kind (the daemon itself by default). */
  pid?: number;
}

/** The registry /metrics renders; subscribes to the audit (call once per daemon). */
export function daemonMetrics(src: MetricsSources): MetricsRegistry {
  const r = new MetricsRegistry();
  const sessions = src.sessions;
  const count = (pred: (x: ReturnType<typeof sessions>[number]) => boolean) => sessions().filter(pred).length;
  r.gauge('handoff_sessions', 'Sessions by state.', () => ['starting', 'ready', 'stopped', 'crashed'].map((st) => [{ state: st }, count((x) => x.state === st)]));
  r.gauge('handoff_attachments', 'Live sessions by attachment.', () => ['none', 'agent', 'human'].map((a) => [{ attachment: a }, count((x) => x.live && x.attachment === a)]));
  r.gauge('handoff_viewers', 'Human viewers by transport.', () =>
    (['screencast', 'webrtc', 'vnc'] as const).map((t) => [{ transport: t }, sessions().reduce((n, x) => n + x.viewers[t], 0)]),
  );
  r.gauge('handoff_liveview_viewers', 'Human viewers of each live session, by transport and session.', () => {
    const live = sessions().filter((x) => x.live && x.id !== undefined);
    // Scraped together with the per-session live-view series: those of ended sessions go.
    pruneLiveViewSessions(new Set(live.map((x) => x.id!)));
    return live.flatMap((x) => (['screencast', 'webrtc', 'vnc'] as const).map((t): [Labels, number] => [{ transport: t, session: x.id! }, x.viewers[t]]));
  });
  for (const f of LIVE_VIEW_FAMILIES) r.add(f);
  r.gauge('handoff_max_sessions', 'Configured session limit.', () => src.maxSessions);
  r.gauge('handoff_process_resident_bytes', 'Daemon resident memory.', () => process.memoryUsage().rss);
  r.gauge('handoff_process_heap_bytes', 'Daemon JS heap in use.', () => process.memoryUsage().heapUsed);
  r.gauge('handoff_uptime_seconds', 'Seconds since the daemon started.', () => Math.round((Date.now() - src.startedAt) / 1000));
  r.gauge('handoff_child_processes', 'Processes under the daemon by kind (Chromium counts every one of its processes).', () => {
    const kinds = childProcessKinds(src.pid ?? process.pid);
    return ['chromium', 'xvfb', 'ffmpeg', 'sandbox', 'other'].map((k) => [{ kind: k }, kinds[k] ?? 0]);
  });

  const created = r.add(new Counter('handoff_sessions_created_total', 'Sessions created.', [{}]));
  const stopped = r.add(new Counter('handoff_sessions_stopped_total', 'Sessions stopped, by reason.'));
  const crashed = r.add(new Counter('handoff_sessions_crashed_total', 'Sessions that crashed, by reason.'));
  const attaches = r.add(new Counter('handoff_attaches_total', 'Attaches (agent over cdp, human over a live-view transport), by actor and transport.'));
  const detaches = r.add(new Counter('handoff_detaches_total', 'Attaches that ended, by actor and transport.'));
  const authFailures = r.add(new Counter('handoff_auth_failures_total', 'Failed authentications, by transport.'));
  const networkDenied = r.add(new Counter('handoff_network_denied_total', 'Viewers refused by hitl_allowed_networks, by transport.'));
  const handoffsRequested = r.add(new Counter('handoff_handoffs_requested_total', 'Handoffs requested.', [{}]));
  const handoffs = r.add(new Counter('handoff_handoffs_total', 'Handoffs completed, by outcome.'));
  const duration = r.add(new Histogram('handoff_handoff_duration_seconds', 'Time from a handoff request to its outcome, by outcome.', HANDOFF_BUCKETS));
  const downloads = r.add(new Counter('handoff_downloads_total', 'Downloads finished.', [{}]));
  src.audit.subscribe((e) => {
    const reason = (): Labels => ({ reason: labelValue(e.detail.reason) });
    switch (e.type) {
      case 'session_created':
        return created.inc();
      case 'session_stopped':
        return stopped.inc(reason());
      case 'session_crashed':
        return crashed.inc(reason());
      case 'cloud_browser_agent_attach':
        return attaches.inc({ actor: actor(e.actor), transport: transport(e.transport) });
      case 'cloud_browser_agent_detach':
        return detaches.inc({ actor: actor(e.actor), transport: transport(e.transport) });
      case 'auth_failed':
        return authFailures.inc({ transport: transport(e.transport) });
      case 'network_denied':
        return networkDenied.inc({ transport: transport(e.transport) });
      case 'handoff_requested':
        return handoffsRequested.inc();
      case 'handoff_completed': {
        const outcome = { outcome: labelValue(e.detail.outcome) };
        handoffs.inc(outcome);
        const ms = Number(e.detail.duration_ms);
        if (Number.isFinite(ms) && ms >= 0) duration.observe(ms / 1000, outcome);
        return;
      }
      case 'download_completed':
        return downloads.inc();
    }
  });

  r.sampledCounter('handoff_audit_appends_total', 'Audit rows written to the database.', () => src.audit.stats().appends);
  r.sampledCounter('handoff_audit_append_failures_total', 'Audit write attempts that failed (the rows wait in the retry queue).', () => src.audit.stats().failures);
  r.sampledCounter('handoff_audit_dropped_total', 'Audit rows refused because the retry queue was full (each one is in the log in full).', () => src.audit.stats().dropped);
  r.gauge('handoff_audit_queue_depth', 'Audit rows waiting to be written.', () => src.audit.stats().queued);
  r.sampledCounter('handoff_webhook_deliveries_total', 'Webhook events by final result (failed: after all retries; dropped: queue full or shutdown).', () => {
    const h = src.webhook();
    return (['ok', 'failed', 'dropped'] as const).map((k) => [{ result: k }, h[k]]);
  });
  r.gauge('handoff_webhook_pending', 'Webhook events waiting to be sent.', () => src.webhook().pending);
  r.sampledCounter('handoff_uncaught_errors_total', 'Errors that reached the last-resort uncaughtException/unhandledRejection handlers.', src.uncaughtErrors);
  r.add(processRestarts);
  return r;
}

/** Counts the processes below `root` by kind, from /proc (Linux; empty elsewhere). */
export function childProcessKinds(root: number): Record<string, number> {
  const children = new Map<number, number[]>();
  const comm = new Map<number, string>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return {};
  }
  for (const p of pids) {
    const pid = Number(p);
    const stat = procStat(pid);
    // Gone while we looked, or exited.
    if (!stat || stat.state === 'Z') continue;
    comm.set(pid, stat.comm);
    const list = children.get(stat.ppid) ?? [];
    list.push(pid);
    children.set(stat.ppid, list);
  }
  const out: Record<string, number> = {};
  const todo = [...(children.get(root) ?? [])];
  for (let pid = todo.pop(); pid !== undefined; pid = todo.pop()) {
    const name = comm.get(pid) ?? '';
    const kind = /^(chrom|headless_shell)/i.test(name) ? 'chromium' : /^Xvfb/.test(name) ? 'xvfb' : /^ffmpeg/.test(name) ? 'ffmpeg' : /^bwrap/.test(name) ? 'sandbox' : 'other';
    out[kind] = (out[kind] ?? 0) + 1;
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

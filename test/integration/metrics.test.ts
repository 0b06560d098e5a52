import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { freePort } from '../helpers/vnc.js';
import { RawRfb } from '../helpers/vnc-raw.js';
import { parsePrometheus, value } from '../helpers/prometheus.js';

/** API.md 8: counters an operator can alert on, after real sessions, attaches and handoffs. */
describe('/metrics', () => {
  let d: RunningDaemon;
  let vncPort: number;
  let agent: Browser | null = null;

  beforeAll(async () => {
    vncPort = await freePort();
    d = await startDaemon({ args: ['--vnc-port', String(vncPort)] });
  });
  afterAll(async () => {
    if (agent?.connected) await agent.disconnect();
    await d?.cleanup();
  });

  it('parses strictly and counts sessions, attaches, auth failures, handoffs and child processes', async () => {
    const before = parsePrometheus((await api(d.url, '/metrics')).body);
    expect(value(before, 'handoff_sessions_created_total')).toBe(0);
    expect(value(before, 'handoff_process_restarts_total', { kind: 'encoder' })).toBe(0);

    agent = await puppeteer.connect({ browserWSEndpoint: `${d.wsUrl}/?session=m1&auto_close=false&enable_vnc=true&vnc_password=metricsp`, defaultViewport: null });
    // A wrong VNC password: one auth failure on the vnc transport.
    await expect(RawRfb.connect(vncPort, 'wrongpwd')).rejects.toBeTruthy();
    const h = await api(d.url, '/session/m1/handoff', { method: 'POST', body: JSON.stringify({ reason: 'metrics' }) });
    expect(h.status).toBe(200);
    expect((await api(d.url, '/session/m1/handoff/complete', { method: 'POST', body: JSON.stringify({ outcome: 'failed' }) })).status).toBe(200);

    const live = parsePrometheus((await api(d.url, '/metrics')).body);
    expect(value(live, 'handoff_sessions_created_total')).toBe(1);
    expect(value(live, 'handoff_attaches_total', { actor: 'agent', transport: 'cdp' })).toBe(1);
    expect(value(live, 'handoff_auth_failures_total', { transport: 'vnc' })).toBe(1);
    expect(value(live, 'handoff_handoffs_requested_total')).toBe(1);
    expect(value(live, 'handoff_handoffs_total', { outcome: 'failed' })).toBe(1);
    expect(value(live, 'handoff_handoff_duration_seconds_count', { outcome: 'failed' })).toBe(1);
    expect(value(live, 'handoff_handoff_duration_seconds_bucket', { outcome: 'failed', le: '+Inf' })).toBe(1);
    expect(value(live, 'handoff_child_processes', { kind: 'chromium' })).toBeGreaterThanOrEqual(1);
    expect(value(live, 'handoff_child_processes', { kind: 'xvfb' })).toBe(1);
    expect(value(live, 'handoff_attachments', { attachment: 'agent' })).toBe(1);
    expect(value(live, 'handoff_audit_appends_total')).toBeGreaterThanOrEqual(5);
    expect(value(live, 'handoff_audit_queue_depth')).toBe(0);
    expect(value(live, 'handoff_uncaught_errors_total')).toBe(0);
    expect(live.get('handoff_webhook_deliveries_total')?.type).toBe('counter');

    await agent.disconnect();
    expect((await api(d.url, '/session/m1/stop', { method: 'POST' })).status).toBe(200);
    await waitFor('stopped and counted', async () => value(parsePrometheus((await api(d.url, '/metrics')).body), 'handoff_sessions_stopped_total', { reason: 'session_stopped' }) === 1);
    const after = parsePrometheus((await api(d.url, '/metrics')).body);
    expect(value(after, 'handoff_detaches_total', { actor: 'agent', transport: 'cdp' })).toBe(1);
    await waitFor('no child processes left', async () => {
      const f = parsePrometheus((await api(d.url, '/metrics')).body);
      return f.get('handoff_child_processes')!.samples.every((s) => s.value === 0);
    });
    // Counted from the audit: as many appends as rows the trail holds.
    const rows = (await api(d.url, '/audit?limit=1000')).body.events.length;
    expect(value(parsePrometheus((await api(d.url, '/metrics')).body), 'handoff_audit_appends_total')).toBe(rows);
  });
});

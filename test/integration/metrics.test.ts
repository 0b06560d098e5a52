import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import puppeteer, { type Browser } from 'puppeteer-core';
import { startDaemon, type RunningDaemon } from '../helpers/daemon.js';
import { api, waitFor } from '../helpers/client.js';
import { freePort } from '../helpers/vnc.js';
import { RawRfb } from '../helpers/vnc-raw.js';

/**
 * A strict reader of the Prometheus text format 0.0.4: every sample belongs to a family whose
 * HELP and TYPE came first, names and labels are well formed, no series twice, counters end
 * in _total, histograms have cumulative buckets ending in +Inf equal to _count.
 */
interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Family {
  type: string;
  help: string;
  samples: Sample[];
}

function parsePrometheus(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  const seen = new Set<string>();
  let current: string | null = null;
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = /^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line))) {
      if (families.has(m[1]!)) throw new Error(`family ${m[1]} declared twice`);
      families.set(m[1]!, { type: '', help: m[2]!, samples: [] });
      current = m[1]!;
    } else if ((m = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line))) {
      if (m[1] !== current || families.get(current)!.type) throw new Error(`TYPE ${m[1]} not right after its HELP`);
      families.get(current)!.type = m[2]!;
    } else if ((m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line))) {
      const [, name, , body, value] = m;
      const fam: Family | undefined = current ? families.get(current) : undefined;
      if (!fam || !fam.type) throw new Error(`sample ${name} outside a family`);
      const base: string = fam.type === 'histogram' ? name!.replace(/_(bucket|sum|count)$/, '') : name;
      if (base !== current) throw new Error(`sample ${name} in family ${current}`);
      const labels: Record<string, string> = {};
      if (body) {
        const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"(,|$)/y;
        let at = 0;
        while (at < body.length) {
          const l = re.exec(body);
          if (!l || l.index !== at) throw new Error(`bad labels in ${line}`);
          if (l[1]! in labels) throw new Error(`label ${l[1]} twice in ${line}`);
          labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\(["\\])/g, '$1');
          at = re.lastIndex;
        }
      }
      const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
      if (seen.has(key)) throw new Error(`series twice: ${line}`);
      seen.add(key);
      const v = Number(value);
      if (Number.isNaN(v) && value !== 'NaN') throw new Error(`bad value in ${line}`);
      fam.samples.push({ name: name!, labels, value: v });
    } else {
      throw new Error(`not the Prometheus text format: ${JSON.stringify(line)}`);
    }
  }
  for (const [name, f] of families) {
    if (!f.type) throw new Error(`${name} has no TYPE`);
    if (f.type === 'counter') {
      expect(name, 'counters end in _total').toMatch(/_total$/);
      for (const s of f.samples) expect(s.value).toBeGreaterThanOrEqual(0);
    }
    if (f.type === 'histogram') {
      const series = new Map<string, Sample[]>();
      for (const s of f.samples.filter((x) => x.name.endsWith('_bucket'))) {
        const { le, ...rest } = s.labels;
        expect(le).toBeDefined();
        const k = JSON.stringify(rest);
        series.set(k, [...(series.get(k) ?? []), s]);
      }
      for (const [k, buckets] of series) {
        for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
        expect(buckets.at(-1)!.labels.le).toBe('+Inf');
        const count = f.samples.find((s) => s.name === `${name}_count` && JSON.stringify((({ le: _, ...r }) => r)(s.labels)) === k);
        expect(count?.value).toBe(buckets.at(-1)!.value);
      }
    }
  }
  return families;
}

const value = (f: Map<string, Family>, name: string, labels: Record<string, string> = {}) =>
  (f.get(name) ?? f.get(name.replace(/_(bucket|sum|count)$/, '')))?.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;

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

import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { request as httpRequest } from 'node:http';
import WebSocket from 'ws';

export interface ApiResponse<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

/** fetch + JSON body (or text when it is not JSON). */
export async function api<T = any>(base: string, path: string, init: RequestInit = {}): Promise<ApiResponse<T>> {
  // A string body is JSON here (fetch would label it text/plain, which the daemon refuses).
  if (typeof init.body === 'string' && !new Headers(init.headers).has('content-type')) {
    const headers = new Headers(init.headers);
    headers.set('content-type', 'application/json');
    init = { ...init, headers };
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let body: any = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body, headers: res.headers };
}

export type WsOutcome =
  | { kind: 'open'; ws: WebSocket }
  | { kind: 'refused'; status: number; body: any }
  | { kind: 'error'; error: Error };

/**
 * Opens a raw WebSocket and reports whether it opened or how the upgrade was refused;
 * `listen` sees the socket before it opens (for messages sent right after the upgrade).
 */
export function tryWs(url: string, headers: Record<string, string> = {}, listen?: (ws: WebSocket) => void): Promise<WsOutcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { headers, perMessageDeflate: false });
    listen?.(ws);
    ws.once('open', () => resolve({ kind: 'open', ws }));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: any = text;
        try {
          body = JSON.parse(text);
        } catch {
          // keep text
        }
        resolve({ kind: 'refused', status: res.statusCode ?? 0, body });
        ws.terminate();
      });
    });
    ws.once('error', (error) => resolve({ kind: 'error', error }));
  });
}

/** Resolves with the close code and reason of a socket; call it while the socket is open. */
export function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('socket already closed: watch it before it closes');
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** Sends one CDP command on a raw socket and resolves with its result (or rejects with its error). */
export function cdpCall(ws: WebSocket, id: number, method: string, params: object = {}, sessionId?: string): Promise<any> {
  return new Promise((resolve, reject) => {
    const onMessage = (data: WebSocket.RawData) => {
      const msg = JSON.parse(data.toString());
      if (msg.id !== id) return;
      ws.off('message', onMessage);
      if (msg.error) reject(new Error(JSON.stringify(msg.error)));
      else resolve(msg.result);
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }));
  });
}

/** Polls `fn` until it returns a truthy value; fails after `timeoutMs` (a liveness bound only). */
export async function waitFor<T>(what: string, fn: () => T | Promise<T>, timeoutMs = 20_000, everyMs = 100): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last value: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether a pid runs (a zombie waiting for a reaper counts as gone). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

/** pid -> parent pid and start time (field 22 of /proc/PID/stat, against pid reuse). */
export function processTable(): Map<number, { ppid: number; started: string }> {
  const out = new Map<number, { ppid: number; started: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(Number(name), { ppid: Number(fields[1]), started: fields[19]! });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Pids of live processes whose command line contains `needle` (read from /proc, kills nothing). */
export function pidsMatching(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (pid === process.pid) continue;
    try {
      const cmd = readFileSync(join('/proc', name, 'cmdline'), 'utf8').replace(/\0/g, ' ');
      if (cmd.includes(needle) && alive(pid)) out.push(pid);
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

export interface OwnedRow {
  id: number;
  kind: 'xvfb' | 'chromium' | 'ffmpeg';
  pid: number | null;
  path: string | null;
  session_id: string;
  run_id: string;
}

/** The daemon's `owned` table (processes and temp dirs it started), read only. */
export function ownedRows(stateDir: string, sessionId?: string): OwnedRow[] {
  const db = new Database(join(stateDir, 'handoff.db'), { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT * FROM owned ORDER BY id').all() as OwnedRow[];
    return sessionId ? rows.filter((r) => r.session_id === sessionId) : rows;
  } finally {
    db.close();
  }
}

/**
 * One HTTP request with the path sent exactly as given (fetch would normalize `%2e%2e` and
 * `..` away before they reach the server).
 */
export function rawRequest(port: number, method: string, path: string, headers: Record<string, string> = {}): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method, path, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        let body: any = text;
        try {
          body = JSON.parse(text);
        } catch {
          // keep text
        }
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') h.set(k, v);
        resolve({ status: res.statusCode ?? 0, body, headers: h });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

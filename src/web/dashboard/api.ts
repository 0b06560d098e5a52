// The dashboard's REST calls with the API key (kept in this tab's sessionStorage).

const KEY_STORAGE = 'handoff.apiKey';
let apiKey = sessionStorage.getItem(KEY_STORAGE) || '';

/** A 401: the key form is showing. */
export class Unauthorized extends Error {}

let onUnauthorized: (rejected: boolean) => void = () => {};

/** What to do on a 401 (show the key form; `rejected` when a key was sent). */
export function whenUnauthorized(cb: (rejected: boolean) => void): void {
  onUnauthorized = cb;
}

export function setApiKey(key: string): void {
  apiKey = key;
  sessionStorage.setItem(KEY_STORAGE, key);
}

/** Calls the REST API with the key; a 401 shows the key form. */
export async function api<T = any>(path: string, init: RequestInit = {}): Promise<T> {
  const headers = new Headers(init.headers);
  if (apiKey) headers.set('authorization', `Bearer ${apiKey}`);
  const res = await fetch(path, { ...init, headers, cache: 'no-store' });
  if (res.status === 401) {
    onUnauthorized(Boolean(apiKey));
    throw new Unauthorized();
  }
  const body = await res.json().catch(() => null);
  if (!res.ok) throw new Error(body?.error?.message || `HTTP ${res.status}`);
  return body as T;
}

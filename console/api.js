// api.js — the console's one door to the API: fetch with the Bearer token
// kept in sessionStorage. A 401 anywhere signs the page out (back to the
// sign-in form).
const KEY = 'cascade.token';
let onUnauthorized = () => {};

export class ApiError extends Error {
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

export function token() { return sessionStorage.getItem(KEY); }
export function setToken(t) { sessionStorage.setItem(KEY, t); }
export function dropToken() { sessionStorage.removeItem(KEY); }
export function setUnauthorizedHandler(fn) { onUnauthorized = fn; }

// api('GET', '/stats') -> the parsed JSON; throws ApiError (status 0: no answer)
export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token() || ''}` };
  const init = { method, headers, cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(`/api/v1${path}`, init);
  } catch (e) {
    throw new ApiError(0, 'unreachable', e.message);
  }
  let json = null;
  try { json = await res.json(); } catch { /* an empty or non-JSON answer */ }
  if (res.status === 401) {
    onUnauthorized();
    throw new ApiError(401, 'unauthorized', json?.detail);
  }
  if (!res.ok) throw new ApiError(res.status, json?.error, json?.detail);
  return json;
}

// The public HTTP API (spec/http-api.md), as the browser's cookie session sees it: the CSRF
// token from login and /v2/me goes back on every write (§1.8); errors become ApiError with the
// API's stable code.

let csrfToken = null;

export class ApiError extends Error {
  constructor(status, body) {
    const message = (body && body.message) || `HTTP ${status}`;
    super(message);
    this.status = status;
    this.code = (body && body.error) || `HTTP${status}`;
    this.details = body && body.details;
  }
}

async function send(method, path, { json, body, headers = {} } = {}) {
  const h = { accept: 'application/json', ...headers };
  let payload = body;
  if (json !== undefined) {
    h['content-type'] = 'application/json';
    payload = JSON.stringify(json);
  }
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) h['x-prismeai-csrf-token'] = csrfToken;
  const res = await fetch(path, { method, headers: h, body: payload, credentials: 'same-origin' });
  const token = res.headers.get('x-prismeai-csrf-token');
  if (token) csrfToken = token;
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, res };
}

/** JSON call; resolves to the parsed body. */
export async function api(method, path, json) {
  return (await send(method, path, { json })).data;
}

/** JSON call that also returns the Response (headers, status). */
export function apiRaw(method, path, options) {
  return send(method, path, options);
}

export const enc = encodeURIComponent;

/** The CSRF header a cookie-session write needs, for callers that use fetch themselves. */
export function csrfHeaders() {
  return csrfToken ? { 'x-prismeai-csrf-token': csrfToken } : {};
}

export function forgetSession() {
  csrfToken = null;
}

/** The `{error, message, details}` of a failure, as one line for people. */
export function describe(err) {
  if (!(err instanceof ApiError)) return String(err && err.message ? err.message : err);
  let text = `${err.code}: ${err.message}`;
  if (Array.isArray(err.details)) {
    text += ` (${err.details.map((d) => (d.path ? `${d.path}: ${d.message}` : JSON.stringify(d))).join('; ')})`;
  } else if (err.details && typeof err.details === 'object') {
    text += ` ${JSON.stringify(err.details)}`;
  }
  return text;
}

/** Same-origin calls to the reporting service, with its errors turned into sentences. */

export class ApiError extends Error {
  constructor(status, body, message) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** `params`: an object whose array values repeat the parameter; empty values are left out. */
export function apiUrl(path, params) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const one of Array.isArray(v) ? v : [v]) if (one != null && one !== '') qs.append(k, one);
  }
  const s = qs.toString();
  return s ? path + '?' + s : path;
}

export async function api(path, params) {
  let res;
  try {
    res = await fetch(apiUrl(path, params), { headers: { accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, null, 'reporting service not reachable (' + (e && e.message ? e.message : e) + ')');
  }
  const text = await res.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = null;
  }
  if (res.status === 401 && body && typeof body.login === 'string') {
    // The service asks for a sign-in (reporting.auth): its login page opens this same view again.
    location.assign(body.login + '?next=' + encodeURIComponent(location.search));
  }
  if (!res.ok) throw new ApiError(res.status, body, describeError(res.status, body, text));
  return body;
}

export const isStandby = (e) => Boolean(e && e.body && e.body.error === 'standby');

function describeError(status, body, text) {
  if (body && body.error === 'standby') return 'standby: reports are served by ' + (body.activeSite || 'the active site');
  const msg = body && typeof body.error === 'string' ? body.error : (text || '').slice(0, 300);
  if (status === 400) return 'The request was refused: ' + msg;
  if (status === 503) return 'Service unavailable: ' + msg;
  return 'HTTP ' + status + (msg ? ': ' + msg : '');
}

// The one place the API turns errors into responses: a CorralError keeps its code, message and
// details with the registry's status; anything else is logged and answered as a bare INTERNAL, so
// stack traces, host paths and SQL never reach a client.
import type { Context, Hono } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { CorralError, errorCodes, toCorralError, type ErrorCode } from '../protocol/errors.ts';
import type { ApiEnv, ApiLogger } from './api-types.ts';

/** Codes whose converted messages are fixed sentences (no paths, no SQL) and useful to a client. */
const passThrough = new Set<ErrorCode>(['STORAGE_FULL', 'STORAGE_READ_ONLY', 'STORAGE_BUSY']);

/** The CorralError to answer with for anything a handler threw. */
export function apiError(e: unknown): CorralError {
  if (e instanceof CorralError) return e;
  if (e instanceof HTTPException) {
    // hono's own (e.g. from a built-in middleware): keep the status class, never its text.
    if (e.status === 413) return new CorralError('PAYLOAD_TOO_LARGE', 'the request body is too large', {});
    if (e.status >= 400 && e.status < 500) return new CorralError('INVALID_ARGUMENT', `the request was rejected (HTTP ${e.status})`, { status: e.status });
  }
  const converted = toCorralError(e);
  if (passThrough.has(converted.code)) return converted;
  return new CorralError('INTERNAL', 'the daemon failed while handling the request: the daemon log has the details under this request id', {});
}

export function errorResponse(c: Context<ApiEnv>, err: CorralError, headers?: Record<string, string>): Response {
  const status = errorCodes[err.code].status as ContentfulStatusCode;
  return c.json(err.toEnvelope(c.get('requestId')), status, headers);
}

/** Installs the error handler and the 404/405 answers on `app`. */
export function installErrorHandling(app: Hono<ApiEnv>, logger: ApiLogger): void {
  app.onError((e, c) => {
    const err = apiError(e);
    const requestId = c.get('requestId');
    if (err.code === 'INTERNAL' || errorCodes[err.code].status >= 500) logger.error({ requestId, err: e }, 'request failed');
    return errorResponse(c, err);
  });

  app.notFound((c) => {
    const allowed = allowedMethods(app, c.req.path);
    if (allowed.length > 0) {
      return errorResponse(
        c,
        new CorralError('METHOD_NOT_ALLOWED', `${c.req.method} is not supported on this path: use ${allowed.join(' or ')}`, { method: c.req.method, allowed }),
        { allow: allowed.join(', ') },
      );
    }
    return errorResponse(c, new CorralError('NOT_FOUND', 'no such route: GET /openapi.json lists the routes', { method: c.req.method }));
  });
}

/** The methods registered for `path` (hono has no 405 of its own); middleware (method ALL) does not count. */
export function allowedMethods(app: Hono<ApiEnv>, path: string): string[] {
  const methods = new Set<string>();
  for (const r of app.routes) {
    if (r.method === 'ALL') continue;
    if (routePattern(r.path).test(path)) methods.add(r.method);
  }
  if (methods.has('GET')) methods.add('HEAD');
  return [...methods].sort();
}

/** `/v1/sandboxes/:id` → a RegExp matching one segment per parameter; `*` matches the rest. */
function routePattern(routePath: string): RegExp {
  const source = routePath
    .split('/')
    .map((seg) => (seg.startsWith(':') ? '[^/]+' : seg === '*' ? '.*' : seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')))
    .join('/');
  return new RegExp(`^${source}$`);
}

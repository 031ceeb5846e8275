// Middleware every route runs behind: the request id, the access log, the body-size limit, and the
// JSON body reader the POST routes use (strict: malformed JSON, wrong types and unknown fields are
// INVALID_ARGUMENT, with zod's issues in the details).
import type { Context, MiddlewareHandler } from 'hono';
import type { z } from 'zod';
import { newId } from '../protocol/api-schemas.ts';
import { CorralError } from '../protocol/errors.ts';
import type { ApiEnv, ApiLogger } from './api-types.ts';

export const REQUEST_ID_HEADER = 'x-request-id';
export const DEFAULT_BODY_LIMIT = 1024 * 1024;
/** The body limit of POST /mcp: a write_file's JSON holds a whole file (as read_file returns up to 16 MiB). */
export const MCP_BODY_LIMIT = 24 * 1024 * 1024;

// A client's id is echoed back and logged: only short, plain ids are taken as they are.
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Sets `requestId` (the client's x-request-id when well-formed, else `req_…`) and echoes it in the response. */
export function requestIdMiddleware(): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const given = c.req.header(REQUEST_ID_HEADER);
    const id = given !== undefined && CLIENT_REQUEST_ID.test(given) ? given : newId('req');
    c.set('requestId', id);
    await next();
    c.res.headers.set(REQUEST_ID_HEADER, id);
  };
}

/** One JSON log line per request: id, method, path (no query: it may carry secrets), status, duration. */
export function accessLogMiddleware(logger: ApiLogger): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const started = performance.now();
    await next();
    logger.info(
      { requestId: c.get('requestId'), method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round((performance.now() - started) * 100) / 100 },
      'request',
    );
  };
}

export function tooLarge(limit: number): CorralError {
  return new CorralError('PAYLOAD_TOO_LARGE', `the request body is over the limit of ${limit} bytes: send less (nothing was changed)`, { limit });
}

/** A body read whole, chunk by chunk, refused (PAYLOAD_TOO_LARGE) as soon as it passes `limit` bytes. */
export async function readLimited(stream: ReadableStream<Uint8Array>, limit: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = stream.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/**
 * Rejects bodies over the route's limit (`limitOf(method, path)` bytes): at once when Content-Length
 * says so, else while reading (a chunked body is buffered up to the limit and no further), so a huge
 * body never fills the memory. A route whose limit is null is left alone: it streams the body under
 * limits of its own (the file uploads).
 */
export function bodyLimitMiddleware(limitOf: (method: string, path: string) => number | null): MiddlewareHandler<ApiEnv> {
  return async (c, next) => {
    const raw = c.req.raw;
    const method = c.req.method;
    // GET and HEAD carry no body here (the Node adapter gives them none). Reading `raw.body` is left
    // to the last: on the adapter's request it builds a whole web Request and stream (tens of µs).
    if (method === 'GET' || method === 'HEAD') return next();
    const limit = limitOf(method, c.req.path);
    if (limit === null) return next();
    const declared = raw.headers.get('content-length');
    if (declared !== null && !raw.headers.has('transfer-encoding')) {
      if (!/^\d{1,16}$/.test(declared)) throw new CorralError('INVALID_ARGUMENT', 'the Content-Length header is not a number', {});
      if (Number(declared) > limit) throw tooLarge(limit);
      return next();
    }
    if (!raw.body) return next();
    const body = await readLimited(raw.body, limit);
    // A fresh Request from the parts: the Node adapter's request objects are not the global Request class.
    c.req.raw = new Request(raw.url, { method: raw.method, headers: raw.headers, body, signal: raw.signal });
    return next();
  };
}

// Strict (invalid bytes throw); it keeps no state between whole (non-streaming) decodes, so one serves every request.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/** zod's issues, trimmed to what a client needs to fix its request. */
function issuesOf(error: z.ZodError): { path: string; code: string; message: string; keys?: string[] }[] {
  return error.issues.slice(0, 20).map((i) => ({
    path: i.path.map(String).join('.'),
    code: i.code,
    message: i.message,
    ...('keys' in i && Array.isArray(i.keys) ? { keys: i.keys.map(String).slice(0, 20) } : {}),
  }));
}

/**
 * The request's JSON body, validated by `schema` (make object schemas `.strict()` so unknown
 * fields are refused). Requires Content-Type application/json, which also makes browsers preflight
 * cross-origin requests; rejects empty bodies, invalid UTF-8 and malformed JSON.
 */
export async function readJson<S extends z.ZodType>(c: Context<ApiEnv>, schema: S): Promise<z.output<S>> {
  const type = c.req.header('content-type') ?? '';
  if (!/^application\/json\s*(;|$)/i.test(type)) {
    throw new CorralError('INVALID_ARGUMENT', 'the request body must be JSON: send Content-Type: application/json', { contentType: type.slice(0, 100) });
  }
  const bytes = new Uint8Array(await c.req.arrayBuffer());
  if (bytes.byteLength === 0) throw new CorralError('INVALID_ARGUMENT', 'the request body is empty: send a JSON object', {});
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    throw new CorralError('INVALID_ARGUMENT', 'the request body is not valid UTF-8', {});
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    throw new CorralError('INVALID_ARGUMENT', `the request body is not valid JSON: ${(e as Error).message.slice(0, 200)}`, {});
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    const issues = issuesOf(parsed.error);
    const first = issues[0];
    const where = first && first.path ? ` at ${first.path}` : '';
    throw new CorralError('INVALID_ARGUMENT', `the request body is invalid${where}: ${first?.message ?? 'see details'}`, { issues });
  }
  return parsed.data;
}

// A fetch over a Unix socket for Node: requests go through node:http with `socketPath` (kept-alive
// connections), and answers come back as web Responses with streaming bodies, so everything above
// the transport is the same code as in a browser.
import { Agent, request, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import type { FetchLike } from './api-client.ts';

const NULL_BODY_STATUSES = new Set([101, 204, 205, 304]);

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function headersOf(init: RequestInit['headers']): Record<string, string> {
  const out: Record<string, string> = {};
  new Headers(init).forEach((value, key) => (out[key] = value));
  return out;
}

function responseHeaders(res: IncomingMessage): Headers {
  const h = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    try {
      h.append(raw[i]!, raw[i + 1]!);
    } catch {
      // A header the web Headers class refuses is left out rather than failing the whole answer.
    }
  }
  return h;
}

/** The request body as bytes, or as a web stream to pipe; null for none. */
function bodyParts(body: RequestInit['body']): { bytes: Uint8Array | string | null; stream: ReadableStream<Uint8Array> | null } {
  if (body === undefined || body === null) return { bytes: null, stream: null };
  if (typeof body === 'string') return { bytes: body, stream: null };
  if (body instanceof ArrayBuffer) return { bytes: new Uint8Array(body), stream: null };
  if (ArrayBuffer.isView(body)) return { bytes: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), stream: null };
  if (body instanceof URLSearchParams) return { bytes: body.toString(), stream: null };
  if (body instanceof Blob) return { bytes: null, stream: body.stream() as ReadableStream<Uint8Array> };
  if (body instanceof ReadableStream) return { bytes: null, stream: body as ReadableStream<Uint8Array> };
  throw new TypeError('this request body type is not supported over the Unix socket: send a string, bytes, a Blob or a ReadableStream');
}

/**
 * A fetch that sends every request to the HTTP server on the Unix socket `socketPath` (the URL's path
 * and query are used; its host only fills the Host header). close() drops the idle connections.
 */
export function unixSocketFetch(socketPath: string): FetchLike {
  const agent = new Agent({ keepAlive: true });
  const send = (url: string, init: RequestInit = {}): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const signal = init.signal ?? undefined;
      if (signal?.aborted) return reject(abortReason(signal));
      const u = new URL(url);
      const method = (init.method ?? 'GET').toUpperCase();
      let parts: ReturnType<typeof bodyParts>;
      try {
        parts = bodyParts(init.body);
      } catch (e) {
        return reject(e);
      }
      const req = request({ socketPath, agent, method, path: `${u.pathname}${u.search}`, headers: { host: u.host, ...headersOf(init.headers) } });
      let res: IncomingMessage | undefined;
      const onAbort = (): void => {
        const reason = abortReason(signal!);
        const err = reason instanceof Error ? reason : new DOMException('This operation was aborted', 'AbortError');
        res?.destroy(err);
        req.destroy(err);
      };
      const cleanup = (): void => signal?.removeEventListener('abort', onAbort);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', (e) => {
        if (res) return;
        cleanup();
        reject(signal?.aborted ? abortReason(signal) : new Error(`${(e as NodeJS.ErrnoException).code ?? 'error'} on unix:${socketPath}: ${e.message}`, { cause: e }));
      });
      req.on('response', (incoming) => {
        res = incoming;
        incoming.on('close', cleanup);
        const status = incoming.statusCode ?? 502;
        const empty = method === 'HEAD' || NULL_BODY_STATUSES.has(status);
        if (empty) incoming.resume();
        const body = empty ? null : (Readable.toWeb(incoming) as unknown as ReadableStream<Uint8Array>);
        resolve(new Response(body, { status, statusText: incoming.statusMessage ?? '', headers: responseHeaders(incoming) }));
      });
      if (parts.stream) {
        // pipe (not pipeline): a server that answers before reading the whole body must not lose its answer.
        const source = Readable.fromWeb(parts.stream as import('node:stream/web').ReadableStream<Uint8Array>);
        source.on('error', (e) => req.destroy(e));
        req.on('error', () => source.destroy());
        source.pipe(req);
      } else if (parts.bytes !== null) req.end(parts.bytes);
      else req.end();
    });
  const f = send as FetchLike;
  f.endpoint = `unix:${socketPath}`;
  f.close = () => agent.destroy();
  return f;
}

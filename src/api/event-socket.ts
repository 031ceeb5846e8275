// The event stream as a WebSocket: GET /v1/events or /v1/sandboxes/{id}/events upgraded (same
// query: sandbox, types, after). It is the SSE stream carried over: the upgrade request is first
// answered by the HTTP API itself (auth, scopes, tenant, filters, replay after `after`), so both
// variants refuse and filter exactly alike, and each SSE event becomes one text message — the
// CorralEvent JSON, or {"type":"reset", ...EventReset} when part of the replay is gone (parsed by
// the SDK's readSse). The socket is pinged every 15 s instead of the keepalive comments. A message is
// sent only after the previous one reached the socket, so a client that does not read falls behind
// on the server's bounded backlog and is cut off like an SSE client (reconnect with ?after=<seq>).
//
// Browsers cannot set headers: over TCP the key may come as the subprotocol `corral.key.<secret>`
// next to `corral.v1`, as for the attach WebSocket.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CorralError } from '../protocol/errors.ts';
import type { ApiLogger, Transport } from './api-types.ts';
import { readSse, type SseEvent } from '../sdk/sse-reader.ts';
import { refuseUpgrade, upgradeKey } from './exec-socket.ts';

const EVENTS = /^\/v1\/(?:events|sandboxes\/[^/]+\/events)$/;

export interface EventSocketDeps {
  /** The API's fetch handler (the app's `fetch`): the stream is asked of it as an SSE request. */
  fetch: (request: Request, env: { transport: Transport }) => Response | Promise<Response>;
  logger: ApiLogger;
}

export interface EventSocketServer {
  /** Whether this server takes an upgrade for that request URL. */
  handles(url: string | undefined): boolean;
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, transport: Transport): void;
  /** Closes every socket (the daemon's shutdown). */
  close(): void;
}

/** How often an open socket is pinged (the SSE stream's keepalive comments are not carried over). */
const PING_MS = 15_000;

/** The WebSocket message for one SSE event: the event JSON, a reset typed as such. */
function toMessage(e: SseEvent): string {
  return e.event === 'reset' ? JSON.stringify({ type: 'reset', ...(JSON.parse(e.data) as object) }) : e.data;
}

export function createEventSocketServer(deps: EventSocketDeps): EventSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, handleProtocols: (protocols) => (protocols.has('corral.v1') ? 'corral.v1' : false) });

  const pump = async (ws: WebSocket, body: ReadableStream<Uint8Array>, stop: AbortController): Promise<void> => {
    const pinger = setInterval(() => ws.ping(), PING_MS);
    pinger.unref();
    try {
      // Leaving the loop (socket closed) cancels the body, which ends the route's subscription.
      for await (const e of readSse(body)) {
        if (ws.readyState !== ws.OPEN) break;
        await new Promise<void>((resolve, reject) => ws.send(toMessage(e), (err) => (err ? reject(err) : resolve())));
      }
      // The stream ended on its own: a sandbox's stream after its destruction, or a client too far behind.
      if (ws.readyState === ws.OPEN) ws.close(1000, 'stream ended');
    } catch (e) {
      if (ws.readyState === ws.OPEN) {
        deps.logger.warn({ err: (e as Error).message }, 'event socket stream failed');
        ws.close(1011, 'stream failed');
      }
    } finally {
      clearInterval(pinger);
      stop.abort();
    }
  };

  return {
    handles(url) {
      return EVENTS.test(new URL(url ?? '/', 'http://corral').pathname);
    },
    handleUpgrade(request, socket, head, transport) {
      void (async () => {
        const stop = new AbortController();
        try {
          const url = new URL(request.url ?? '/', 'http://corral');
          if (!EVENTS.test(url.pathname)) throw new CorralError('NOT_FOUND', `no event WebSocket at ${url.pathname.slice(0, 200)}: use /v1/events or /v1/sandboxes/{id}/events`, {});
          const headers = new Headers({ accept: 'text/event-stream' });
          const key = upgradeKey(request);
          if (key !== undefined) headers.set('authorization', `Bearer ${key}`);
          const requestId = request.headers['x-request-id'];
          if (typeof requestId === 'string') headers.set('x-request-id', requestId);
          // The API answers first: its error (401, 403, 404, 400) is the upgrade's answer, unchanged.
          const res = await deps.fetch(new Request(`http://corral${url.pathname}${url.search}`, { headers, signal: stop.signal }), { transport });
          if (res.status !== 200 || res.body === null) {
            stop.abort();
            const text = await res.text().catch(() => '');
            socket.end(`HTTP/1.1 ${res.status} ${STATUS_CODES[res.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
            return;
          }
          const body = res.body;
          wss.handleUpgrade(request, socket, head, (ws) => {
            ws.on('close', () => stop.abort());
            ws.on('error', () => stop.abort());
            ws.on('message', () => ws.send(JSON.stringify({ type: 'error', error: { code: 'INVALID_ARGUMENT', message: 'the event socket only sends: filter with the query (types, sandbox, after) when connecting' } })));
            void pump(ws, body, stop);
          });
        } catch (e) {
          stop.abort();
          refuseUpgrade(socket, e);
        }
      })();
    },
    close() {
      for (const ws of wss.clients) ws.close(1001, 'daemon shutting down');
      wss.close();
    },
  };
}

// The event stream as a WebSocket: GET /v1/events or /v1/sandboxes/{id}/events upgraded (same
// query: sandbox, types, after). It is the SSE stream carried over: the upgrade request is first
// answered by the HTTP API itself (auth, scopes, tenant, filters, replay after `after`), so both
// variants refuse and filter exactly alike, and each SSE event becomes one text message — the
// CorralEvent JSON, or {"type":"reset", ...EventReset} when part of the replay is gone. Keepalive
// comments become WebSocket pings. A message is sent only after the previous one reached the
// socket, so a client that does not read falls behind on the server's bounded backlog and is cut
// off like an SSE client (reconnect with ?after=<last seq>).
//
// Browsers cannot set headers: over TCP the key may come as the subprotocol `corral.key.<secret>`
// next to `corral.v1`, as for the attach WebSocket.
import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { CorralError } from '../protocol/errors.ts';
import type { ApiLogger, Transport } from './api-types.ts';
import { refuseUpgrade } from './exec-socket.ts';

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

/** One SSE event's fields (comments dropped). */
interface SseEvent {
  event: string;
  data: string;
}

/** Splits an SSE text stream into events; `rest` keeps a partial event for the next chunk. */
function parseSse(text: string): { events: SseEvent[]; comments: number; rest: string } {
  const blocks = text.split('\n\n');
  const rest = blocks.pop() ?? '';
  const events: SseEvent[] = [];
  let comments = 0;
  for (const block of blocks) {
    let event = 'message';
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith(':')) comments++;
      else if (line.startsWith('event: ')) event = line.slice(7);
      else if (line.startsWith('data: ')) data.push(line.slice(6));
    }
    if (data.length > 0) events.push({ event, data: data.join('\n') });
  }
  return { events, comments, rest };
}

/** The WebSocket message for one SSE event: the event JSON, a reset typed as such. */
function toMessage(e: SseEvent): string {
  return e.event === 'reset' ? JSON.stringify({ type: 'reset', ...(JSON.parse(e.data) as object) }) : e.data;
}

export function createEventSocketServer(deps: EventSocketDeps): EventSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: 4096, handleProtocols: (protocols) => (protocols.has('corral.v1') ? 'corral.v1' : false) });

  const pump = async (ws: WebSocket, body: ReadableStream<Uint8Array>, stop: AbortController): Promise<void> => {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffered = '';
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done || ws.readyState !== ws.OPEN) break;
        const parsed = parseSse(buffered + decoder.decode(value, { stream: true }));
        buffered = parsed.rest;
        if (parsed.comments > 0) ws.ping();
        for (const e of parsed.events) await new Promise<void>((resolve, reject) => ws.send(toMessage(e), (err) => (err ? reject(err) : resolve())));
      }
      // The stream ended on its own: a sandbox's stream after its destruction, or a client too far behind.
      if (ws.readyState === ws.OPEN) ws.close(1000, 'stream ended');
    } catch (e) {
      if (ws.readyState === ws.OPEN) {
        deps.logger.warn({ err: (e as Error).message }, 'event socket stream failed');
        ws.close(1011, 'stream failed');
      }
    } finally {
      stop.abort();
      await reader.cancel().catch(() => undefined);
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
          const protocols = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
          const headerKey = request.headers.authorization;
          const protocolKey = protocols.find((p) => p.startsWith('corral.key.'))?.slice('corral.key.'.length);
          const headers = new Headers({ accept: 'text/event-stream' });
          if (headerKey !== undefined) headers.set('authorization', headerKey);
          else if (protocolKey !== undefined) headers.set('authorization', `Bearer ${protocolKey}`);
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

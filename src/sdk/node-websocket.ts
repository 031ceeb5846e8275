// WebSockets for Node with the `ws` package: over the daemon's Unix socket (`ws+unix://SOCKET:/path`,
// which the global WebSocket cannot reach) or a URL, with the API key in the Authorization header.
// A refused upgrade is reported with the daemon's error envelope, as a typed CorralApiError.
import WebSocket from 'ws';
import { errorFromResponse } from './api-client.ts';
import type { WebSocketFactory, WebSocketInit, WebSocketLike } from './web-socket.ts';

/** The most of a refusal's body read for its error envelope. */
const MAX_REFUSAL_BYTES = 64 * 1024;

class NodeWebSocket implements WebSocketLike {
  onopen: WebSocketLike['onopen'] = null;
  onmessage: WebSocketLike['onmessage'] = null;
  onerror: WebSocketLike['onerror'] = null;
  onclose: WebSocketLike['onclose'] = null;
  readonly #ws: WebSocket;

  constructor(url: string, init: WebSocketInit) {
    const headers: Record<string, string> = init.apiKey !== undefined ? { authorization: `Bearer ${init.apiKey}` } : {};
    const ws = new WebSocket(url, init.protocols, { headers });
    this.#ws = ws;
    ws.on('open', () => this.onopen?.({}));
    ws.on('message', (data, isBinary) => this.onmessage?.({ data: isBinary ? data : data.toString() }));
    ws.on('error', (error) => this.onerror?.({ error, message: error.message }));
    ws.on('close', (code, reason) => this.onclose?.({ code, reason: reason.toString() }));
    ws.on('unexpected-response', (req, res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (b: Buffer) => {
        if (size < MAX_REFUSAL_BYTES) chunks.push(b);
        size += b.length;
      });
      const report = (): void => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (typeof v === 'string') headers.set(k, v);
        void errorFromResponse(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 502, headers })).then((error) => {
          this.onerror?.({ error, message: error.message });
          req.destroy();
          if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
        });
      };
      res.on('end', report);
      res.on('error', report);
    });
  }

  get readyState(): number {
    return this.#ws.readyState;
  }

  send(data: string): void {
    this.#ws.send(data);
  }

  close(code?: number, reason?: string): void {
    this.#ws.close(code, reason);
  }
}

/** The URL's path and query (what a Unix socket request carries). */
function pathOf(url: string): string {
  const u = new URL(url);
  return `${u.pathname}${u.search}`;
}

/** WebSockets to the daemon on the Unix socket `socketPath` (the URL's host is ignored), or to the URL itself without one. */
export function nodeWebSocketFactory(socketPath?: string): WebSocketFactory {
  return (url, init) => new NodeWebSocket(socketPath !== undefined ? `ws+unix://${socketPath}:${pathOf(url)}` : url, init);
}

// WebSockets for the SDK with web-standard globals only: the shape the SDK needs of a WebSocket (the
// WHATWG one's `on*` handlers), the factory a client opens them with (the global WebSocket by default;
// the Node subpath injects one that reaches the Unix socket), and opening one under a call's timeout
// and AbortSignal.
import type { CallScope } from './api-client.ts';
import { CorralApiError } from './sdk-errors.ts';

/** What the SDK uses of a WebSocket: the WHATWG interface's handlers, text messages only. */
export interface WebSocketLike {
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  /** `data` is a string for the text messages the daemon sends. */
  onmessage: ((event: { data: unknown }) => void) | null;
  /** A factory may give `error` (a CorralApiError, say, when the upgrade was refused with an error envelope). */
  onerror: ((event: { error?: unknown; message?: string }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

export interface WebSocketInit {
  /** The subprotocols to offer (the daemon's is `corral.v1`). */
  protocols: string[];
  /** The API key, when the client has one: a factory sends it as it can (a header, or the subprotocol `corral.key.<key>`). */
  apiKey?: string;
}

/**
 * Opens a WebSocket to `url` (ws: or wss:, built from the client's base URL). The default uses the
 * platform's global WebSocket (browsers, Node ≥ 22, Deno, Bun) and, since a browser cannot set
 * headers, sends the key as the subprotocol `corral.key.<key>`; `corral/node` injects one that
 * reaches the daemon's Unix socket.
 */
export type WebSocketFactory = (url: string, init: WebSocketInit) => WebSocketLike;

type WebSocketCtor = new (url: string, protocols: string[]) => WebSocketLike;

/** The platform's WebSocket, with the key as a subprotocol; null where there is none. */
export function globalWebSocketFactory(): WebSocketFactory | null {
  const Ctor = (globalThis as { WebSocket?: WebSocketCtor }).WebSocket;
  if (typeof Ctor !== 'function') return null;
  return (url, init) => new Ctor(url, init.apiKey !== undefined ? [...init.protocols, `corral.key.${init.apiKey}`] : init.protocols);
}

export const WS_OPEN = 1;

/** Messages that arrived between the opening and the owner's handler (`ws` delivers the first ones in the same tick as open). */
const early = new WeakMap<WebSocketLike, { data: unknown }[]>();

/** Sets the socket's message handler and hands it what arrived before. */
export function onMessages(ws: WebSocketLike, handler: (event: { data: unknown }) => void): void {
  const before = early.get(ws) ?? [];
  early.delete(ws);
  ws.onmessage = handler;
  for (const event of before) handler(event);
}

/**
 * Opens a socket and resolves once it is open; the call's scope (timeout and signal) bounds the opening only.
 * A refusal rejects with the factory's error when it has a CorralApiError, else with `refused()`'s.
 */
export function openWebSocket(factory: WebSocketFactory, url: string, init: WebSocketInit, scope: CallScope, endpoint: string, refused: (reason: string) => Promise<unknown>): Promise<WebSocketLike> {
  return new Promise<WebSocketLike>((resolve, reject) => {
    if (scope.signal.aborted) {
      scope.release();
      return reject(scope.fail(scope.signal.reason, 'opening the WebSocket'));
    }
    let ws: WebSocketLike;
    let settled = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      scope.release();
      ws.onopen = ws.onerror = ws.onclose = null;
      try {
        ws.close();
      } catch {
        // Closing a socket still connecting may throw on some platforms: it is abandoned either way.
      }
      reject(e);
    };
    try {
      ws = factory(url, init);
    } catch (e) {
      scope.release();
      reject(new CorralApiError('INVALID_ARGUMENT', `cannot open a WebSocket to ${endpoint}: ${e instanceof Error ? e.message : String(e)}`, { cause: e }));
      return;
    }
    const onAbort = (): void => fail(scope.fail(scope.signal.reason, 'opening the WebSocket'));
    scope.signal.addEventListener('abort', onAbort, { once: true });
    let reason = '';
    ws.onerror = (event) => {
      if (event?.error instanceof CorralApiError) {
        scope.signal.removeEventListener('abort', onAbort);
        return fail(event.error);
      }
      reason = event?.error instanceof Error ? event.error.message : typeof event?.message === 'string' ? event.message : '';
    };
    ws.onclose = (event) => {
      if (settled) return;
      scope.signal.removeEventListener('abort', onAbort);
      const why = reason || `closed with code ${event?.code ?? 1006}${event?.reason ? ` (${event.reason})` : ''}`;
      // The platform's WebSocket hides the refusal's status: refused() finds the reason another way.
      refused(why).then(fail, fail);
    };
    const buffered: { data: unknown }[] = [];
    early.set(ws, buffered);
    ws.onmessage = (event) => buffered.push(event);
    ws.onopen = () => {
      if (settled) return;
      settled = true;
      scope.signal.removeEventListener('abort', onAbort);
      scope.release();
      ws.onopen = ws.onerror = ws.onclose = null;
      resolve(ws);
    };
  });
}

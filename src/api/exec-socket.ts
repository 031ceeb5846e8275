// The exec attach WebSocket: GET /v1/execs/{id}/attach?stdout=N&stderr=N upgraded. The server sends
// the exec's frames as text messages (the ExecFrame JSON of the SSE stream: replay from the offsets,
// live tail, exit last, then it closes with 1000); the client sends
//   {"type":"stdin","data":"...","encoding":"utf8"|"base64"}  {"type":"eof"}
//   {"type":"kill","signal":"TERM"}                          {"type":"resize","cols":120,"rows":40}
//   {"type":"ack","offset":N}  (with ?ack=true: the stdout offset this client has shown; a terminal
//                               pauses while its output runs far ahead of every acking client)
// A frame is sent only after the previous one reached the socket, so a slow client holds one frame of
// the daemon's memory: the rest waits in the exec's output store.
//
// Auth is the HTTP API's: the Unix socket is the owner; over TCP the key comes in the Authorization
// header or, from browsers (which cannot set headers), as the subprotocol `corral.key.<secret>`
// next to `corral.v1`.
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { isExecId } from '../protocol/ids.ts';
import { CorralError, errorCodes, toCorralError } from '../protocol/errors.ts';
import { hasScope } from '../protocol/key-scopes.ts';
import { attachedStreams, type ExecSessions } from '../services/exec-sessions.ts';
import type { KeyService } from '../services/key-service.ts';
import type { Scope } from '../services/sandbox-service.ts';
import type { ApiLogger, Transport } from './api-types.ts';
import { frameToWire, type StreamCounter } from './exec-routes.ts';

export interface ExecSocketDeps {
  execs: Pick<ExecSessions, 'get' | 'frames' | 'writeStdin' | 'closeStdin' | 'kill' | 'resize' | 'flowControl'>;
  keys?: Pick<KeyService, 'verify'>;
  logger: ApiLogger;
  /** Counts streamed output bytes (the daemon's metrics). */
  count?: StreamCounter;
}

const ATTACH = /^\/v1\/execs\/([^/?]+)\/attach$/;
/** The largest client message (stdin chunks are split by clients well below this). */
const MAX_MESSAGE = 1024 * 1024;

/** The API key of an upgrade request: the Authorization header's, or a browser's subprotocol `corral.key.<secret>`. */
export function upgradeKey(request: IncomingMessage): string | undefined {
  const header = request.headers.authorization;
  if (header !== undefined) return /^Bearer +(\S+) *$/i.exec(header)?.[1];
  const protocols = (request.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  return protocols.find((p) => p.startsWith('corral.key.'))?.slice('corral.key.'.length);
}

/** Answers a refused upgrade with the API's error envelope and status, and closes the socket. */
export function refuseUpgrade(socket: Duplex, e: unknown): void {
  const err = toCorralError(e);
  const body = JSON.stringify(err.toEnvelope());
  const status = errorCodes[err.code].status;
  socket.end(`HTTP/1.1 ${status} ${err.code}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

function offset(params: URLSearchParams, name: string): number {
  const v = params.get(name);
  if (v === null) return 0;
  if (!/^[0-9]{1,15}$/.test(v)) throw new CorralError('INVALID_ARGUMENT', `${name} must be a byte offset (a whole number, 0 or more)`, { [name]: v.slice(0, 40) });
  return Number(v);
}

export interface ExecSocketServer {
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, transport: Transport): void;
  /** Closes every attached socket (the daemon's shutdown). */
  close(): void;
}

export function createExecSocketServer(deps: ExecSocketDeps): ExecSocketServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE, handleProtocols: (protocols) => (protocols.has('corral.v1') ? 'corral.v1' : false) });

  /** Who is calling, as for the HTTP API; throws UNAUTHENTICATED or PERMISSION_DENIED. */
  const authenticate = (request: IncomingMessage, transport: Transport): Scope => {
    if (!deps.keys || transport === 'unix') return { tenant: null };
    const secret = upgradeKey(request);
    if (secret === undefined) throw new CorralError('UNAUTHENTICATED', 'an API key is needed over TCP: send Authorization: Bearer <key>, or the subprotocol corral.key.<key> from a browser', {});
    const key = deps.keys.verify(secret);
    if (!hasScope(key.scopes, 'exec')) throw new CorralError('PERMISSION_DENIED', 'this API key lacks the scope exec, which attaching needs', { scope: 'exec', granted: key.scopes });
    return { tenant: key.tenant };
  };

  const serve = (ws: WebSocket, id: string, from: { stdout: number; stderr: number }, scope: Scope, acking: boolean): void => {
    const stop = new AbortController();
    if (acking) deps.execs.flowControl(id, { attach: true, acked: from.stdout }, scope);
    ws.on('close', () => {
      stop.abort();
      try {
        if (acking) deps.execs.flowControl(id, { detach: true }, scope);
      } catch {
        // The daemon is shutting down (its database closed): nothing to resume any more.
      }
    });
    ws.on('error', () => stop.abort());
    ws.on('message', (raw, isBinary) => {
      try {
        if (isBinary) throw new CorralError('INVALID_ARGUMENT', 'send JSON text messages', {});
        const m = JSON.parse(raw.toString()) as { type?: unknown; data?: unknown; encoding?: unknown; signal?: unknown; cols?: unknown; rows?: unknown; offset?: unknown };
        if (m.type === 'stdin' && typeof m.data === 'string' && (m.encoding === undefined || m.encoding === 'utf8' || m.encoding === 'base64'))
          deps.execs.writeStdin(id, Buffer.from(m.data, m.encoding === 'base64' ? 'base64' : 'utf8'), scope);
        else if (m.type === 'eof') deps.execs.closeStdin(id, scope);
        else if (m.type === 'kill' && (m.signal === undefined || typeof m.signal === 'string' || typeof m.signal === 'number')) deps.execs.kill(id, m.signal ?? 'KILL', scope);
        else if (m.type === 'resize' && typeof m.cols === 'number' && typeof m.rows === 'number') deps.execs.resize(id, m.cols, m.rows, scope);
        else if (m.type === 'ack' && typeof m.offset === 'number') deps.execs.flowControl(id, { acked: m.offset }, scope);
        else throw new CorralError('INVALID_ARGUMENT', 'unknown message: send {type: stdin|eof|kill|resize|ack, ...}', {});
      } catch (e) {
        // A bad message is answered, not fatal: the stream goes on.
        const err = e instanceof SyntaxError ? new CorralError('INVALID_ARGUMENT', 'a message is not JSON', {}) : toCorralError(e);
        ws.send(JSON.stringify({ type: 'error', ...err.toEnvelope() }));
      }
    });
    void (async () => {
      try {
        for await (const f of deps.execs.frames(id, from, { follow: true, signal: stop.signal, streams: attachedStreams(deps.execs.get(id, scope)) }, scope)) {
          if (ws.readyState !== ws.OPEN) return;
          if (f.type === 'output') deps.count?.(f.stream, f.data.length);
          await new Promise<void>((resolve, reject) => ws.send(JSON.stringify(frameToWire(f)), (e) => (e ? reject(e) : resolve())));
        }
        ws.close(1000, 'exited');
      } catch (e) {
        if (ws.readyState === ws.OPEN) {
          deps.logger.warn({ exec: id, err: (e as Error).message }, 'exec attach stream failed');
          ws.close(1011, 'stream failed');
        }
      }
    })();
  };

  return {
    handleUpgrade(request, socket, head, transport) {
      try {
        const url = new URL(request.url ?? '/', 'http://corral');
        const m = ATTACH.exec(url.pathname);
        if (!m) throw new CorralError('NOT_FOUND', `no WebSocket at ${url.pathname.slice(0, 200)}: attach to an exec at /v1/execs/{id}/attach`, {});
        const id = decodeURIComponent(m[1]!);
        if (!isExecId(id)) throw new CorralError('INVALID_ARGUMENT', `'${String(id).slice(0, 80)}' is not an exec id (exec_…)`, {});
        const scope = authenticate(request, transport);
        const from = { stdout: offset(url.searchParams, 'stdout'), stderr: offset(url.searchParams, 'stderr') };
        const ack = url.searchParams.get('ack');
        if (ack !== null && ack !== 'true' && ack !== 'false') throw new CorralError('INVALID_ARGUMENT', 'ack must be true or false', {});
        deps.execs.get(id, scope);
        wss.handleUpgrade(request, socket, head, (ws) => serve(ws, id, from, scope, ack === 'true'));
      } catch (e) {
        refuseUpgrade(socket, e);
      }
    },
    close() {
      for (const ws of wss.clients) ws.close(1001, 'daemon shutting down');
      wss.close();
    },
  };
}

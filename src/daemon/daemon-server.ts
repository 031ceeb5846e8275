// Serves a hono app on a Unix socket (mode 0600) and, optionally, on TCP (loopback unless TLS or an
// explicit opt-in), and drains on close. Each listener tells the app its transport in the env
// bindings (`{transport: 'unix' | 'tcp'}`): the app treats the socket as the owner and asks TCP for keys.
//
// The socket is bound inside a fresh 0700 directory, set to 0600, then hard-linked into place: no
// other user can connect during the window in which a plain bind leaves it at the umask's mode, and
// the link fails rather than replace a socket another daemon put there meanwhile.
import { chmodSync, linkSync, lstatSync, mkdtempSync, readFileSync, rmSync, statSync, unlinkSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer } from 'node:https';
import { createSecureContext } from 'node:tls';
import { createServer as createNetServer, isIP, type AddressInfo, type Server as NetServer } from 'node:net';
import { dirname, join } from 'node:path';
import { getRequestListener } from '@hono/node-server';
import { CorralError } from '../protocol/errors.ts';
import { socketAnswers } from './daemon-process.ts';
import { peerCredentials, type PeerCredentials } from './peer-credentials.ts';
import type { Transport } from '../api/api-types.ts';

export interface DaemonServerOptions {
  /** The app's fetch handler (`app.fetch` of a hono app); env carries the transport and @hono/node-server's bindings. */
  fetch: (request: Request, env: { transport: Transport }) => Response | Promise<Response>;
  /** The Unix socket to listen on. */
  socketPath: string;
  /** Also listen on TCP; host defaults to 127.0.0.1. Another address needs `tls` or `allowNonLoopback`. */
  tcp?: { port: number; host?: string };
  /** Serve TCP as HTTPS: PEM files of the certificate (chain) and its private key, read at start. Needs `tcp`. */
  tls?: { cert: string; key: string };
  /** Listen on a non-loopback address without TLS (API keys then cross the network in clear text). */
  allowNonLoopback?: boolean;
  /** How long close() lets requests in flight finish before cutting their connections (default 10 s). */
  drainMs?: number;
  /** Called for failures the server cannot answer a client about (a listener error after start). */
  onError?: (e: Error) => void;
  /** How long a client may take to send its headers, and its whole request (defaults 10 s and 60 s): trickling clients are cut off. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Who may use the Unix socket, by the peer's credentials (default: this process's uid, and root). */
  allowPeer?: (peer: PeerCredentials) => boolean;
  /** Takes HTTP upgrade requests (WebSockets); without it they are refused. */
  upgrade?: (request: IncomingMessage, socket: Duplex, head: Buffer, transport: Transport) => void;
}

export interface DaemonServer {
  readonly socketPath: string;
  /** The TCP address, when listening on TCP (the real port when 0 was asked for); tls: served as HTTPS. */
  readonly tcp: { host: string; port: number; tls: boolean } | null;
  /** Stops accepting, lets requests in flight finish (up to drainMs), then closes; removes the socket. Idempotent. */
  close(): Promise<void>;
}

// sun_path holds 108 bytes including the final NUL.
const MAX_SOCKET_PATH = 107;


/** Clears the way for a socket at `path`: a stale socket file goes, a live one or any other file stays and is an error. */
async function clearStaleSocket(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new CorralError('CONFLICT', `${path} exists and is not a socket: move it away, or choose another socket path`, { socketPath: path });
  if (await socketAnswers(path)) throw new CorralError('DAEMON_ALREADY_RUNNING', `a daemon already listens on ${path}: stop it first, or use another $CORRAL_HOME`, { socketPath: path });
  unlinkSync(path);
}

function listen(server: NetServer, target: string | { port: number; host: string }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error) => reject(e);
    server.once('error', onError);
    const ready = () => {
      server.off('error', onError);
      resolve();
    };
    if (typeof target === 'string') server.listen(target, ready);
    else server.listen(target.port, target.host, ready);
  });
}

/** Stops `listener` accepting, lets the HTTP server's requests in flight finish (up to drainMs), then cuts them. */
function closeServer(listener: NetServer, http: Server, drainMs: number): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => http.closeAllConnections(), drainMs);
    timer.unref();
    listener.close(() => {
      clearTimeout(timer);
      // An HTTP server fed by a gatekeeper is closed too, which stops its deadline checks.
      if (listener !== http) http.close(() => resolve());
      else resolve();
    });
    // Keep-alive connections with no request in flight would hold close() open: end them now.
    http.closeIdleConnections();
  });
}

export function isLoopback(host: string): boolean {
  const v4 = host.startsWith('::ffff:') ? host.slice(7) : host;
  return host === 'localhost' || host === '::1' || (isIP(v4) === 4 && v4.startsWith('127.'));
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new CorralError('INVALID_ARGUMENT', `cannot read the TLS ${what} ${path}: ${(e as Error).message}`, { [what]: path }, e);
  }
}

/** The certificate and key, read and checked (PEM, and the key matches the certificate) before anything is bound. */
function loadTls(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  const pair = { cert: readPem(tls.cert, 'certificate'), key: readPem(tls.key, 'key') };
  try {
    createSecureContext(pair);
  } catch (e) {
    throw new CorralError('INVALID_ARGUMENT', `the TLS certificate ${tls.cert} and key ${tls.key} are unusable (${(e as Error).message}): give PEM files of a certificate and its own private key`, { certificate: tls.cert, key: tls.key }, e);
  }
  return pair;
}

export async function startDaemonServer(options: DaemonServerOptions): Promise<DaemonServer> {
  const socketPath = options.socketPath;
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new CorralError('INVALID_ARGUMENT', `the socket path is ${Buffer.byteLength(socketPath)} bytes, over the kernel's limit of ${MAX_SOCKET_PATH}: use a shorter $CORRAL_HOME`, { socketPath });
  }
  const host = options.tcp?.host ?? '127.0.0.1';
  if (options.tls && !options.tcp) throw new CorralError('INVALID_ARGUMENT', 'TLS applies to TCP: give a TCP port too (the Unix socket needs no TLS)', {});
  if (options.tcp && !isLoopback(host) && !options.tls && !options.allowNonLoopback) {
    throw new CorralError(
      'INVALID_ARGUMENT',
      `refusing to listen on ${host} without TLS: API keys would cross the network in clear text. Give a certificate and key (--tls-cert, --tls-key), or accept the risk with --insecure-bind`,
      { host },
    );
  }
  const tlsPair = options.tls ? loadTls(options.tls) : undefined;
  const drainMs = options.drainMs ?? 10_000;
  // overrideGlobalObjects: false, so the adapter leaves the process's Request and Response alone.
  // The adapter's own bindings (incoming, outgoing) are kept next to the transport.
  const listenerFor = (transport: Transport) => getRequestListener((req, env) => options.fetch(req, { ...env, transport }), { overrideGlobalObjects: false });
  // Each HTTP server with what listens for it: itself (TCP), or the Unix socket's gatekeeper.
  const servers: { http: Server; listener: NetServer }[] = [];
  const make = (transport: Transport, tls?: { cert: Buffer; key: Buffer }) => {
    // A TLS handshake has the same deadline as headers: a silent client cannot hold a connection open.
    // Slow clients cannot hold a connection forever with a trickled header or body: the deadlines
    // are checked often enough to matter (Node's default check runs every 30 s).
    const headersTimeout = options.headersTimeoutMs ?? 10_000;
    const requestTimeout = options.requestTimeoutMs ?? 60_000;
    const timing = { headersTimeout, requestTimeout, connectionsCheckingInterval: Math.max(50, Math.min(1000, headersTimeout / 2)) };
    const s: Server = tls ? createTlsServer({ ...tls, ...timing, handshakeTimeout: headersTimeout }, listenerFor(transport)) : createServer(timing, listenerFor(transport));
    if (options.onError) s.on('error', options.onError);
    s.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      if (options.upgrade) options.upgrade(req, socket, head, transport);
      else socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    });
    return s;
  };

  await clearStaleSocket(socketPath);
  const unixHttp = make('unix');
  // The socket's mode lets only its owner connect; the gatekeeper also asks the kernel who the peer
  // is (SO_PEERCRED) and serves only this uid (and root) before the HTTP server sees a byte.
  const uid = process.getuid?.() ?? 0;
  const allowed = options.allowPeer ?? ((peer: PeerCredentials) => peer.uid === uid || peer.uid === 0);
  const unixServer = createNetServer({ pauseOnConnect: true }, (socket) => {
    socket.on('error', () => undefined);
    peerCredentials(socket).then(
      (peer) => {
        if (!allowed(peer)) {
          options.onError?.(new Error(`refused a connection from uid ${peer.uid} (pid ${peer.pid}): only uid ${uid} may use ${socketPath}`));
          return void socket.destroy();
        }
        unixHttp.emit('connection', socket);
        socket.resume();
      },
      (e: Error) => {
        options.onError?.(e);
        socket.destroy();
      },
    );
  });
  servers.push({ http: unixHttp, listener: unixServer });
  // The HTTP server never listens itself (the gatekeeper does): its 'listening' event is what
  // starts Node's checks of the header and request deadlines, so it is given one.
  unixHttp.emit('listening');
  let privateDir: string | undefined;
  let bound: { dev: number; ino: number } | undefined;
  try {
    privateDir = mkdtempSync(join(dirname(socketPath), '.corral-sock-'));
    const tmp = join(privateDir, 's');
    await listen(unixServer, tmp);
    chmodSync(tmp, 0o600);
    linkSync(tmp, socketPath);
    const st = statSync(socketPath);
    bound = { dev: st.dev, ino: st.ino };
  } catch (e) {
    unixServer.close();
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new CorralError('DAEMON_ALREADY_RUNNING', `another daemon created ${socketPath} while this one started: stop it first, or use another $CORRAL_HOME`, { socketPath });
    }
    throw new CorralError('HOST_IO_ERROR', `cannot listen on ${socketPath}: ${(e as Error).message}`, { socketPath }, e);
  } finally {
    if (privateDir) rmSync(privateDir, { recursive: true, force: true });
  }

  let tcp: { host: string; port: number; tls: boolean } | null = null;
  if (options.tcp) {
    const tcpServer = make('tcp', tlsPair);
    servers.push({ http: tcpServer, listener: tcpServer });
    try {
      await listen(tcpServer, { port: options.tcp.port, host });
    } catch (e) {
      await Promise.all(servers.map((s) => closeServer(s.listener, s.http, 0)));
      removeOwnSocket(socketPath, bound);
      throw new CorralError('HOST_IO_ERROR', `cannot listen on ${host}:${options.tcp.port}: ${(e as Error).message}`, { host, port: options.tcp.port }, e);
    }
    tcp = { host, port: (tcpServer.address() as AddressInfo).port, tls: tlsPair !== undefined };
  }

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    tcp,
    close() {
      closing ??= (async () => {
        await Promise.all(servers.map((s) => closeServer(s.listener, s.http, drainMs)));
        removeOwnSocket(socketPath, bound);
      })();
      return closing;
    },
  };
}

/** Removes the socket file if it is still the one this server bound (another daemon may have replaced it). */
function removeOwnSocket(path: string, bound: { dev: number; ino: number } | undefined): void {
  try {
    const st = lstatSync(path);
    if (bound && st.dev === bound.dev && st.ino === bound.ino) unlinkSync(path);
  } catch {
    // Already gone.
  }
}

/** The default socket in a Corral home. */
export function defaultSocketPath(home: string): string {
  return join(home, 'corral.sock');
}

// `corral dashboard`: opens the web dashboard of a daemon that listens only on its Unix socket.
// This process opens a loopback TCP port and passes requests through to the socket, after checking
// a one-time token made here: 256 random bits, held only in this process's memory, valid while it
// runs (and for --ttl at most). The browser gets the token in the URL fragment (never sent to a
// server or written to a log), keeps it in sessionStorage, and sends it as `Authorization: Bearer`
// (the `corral.key.<token>` subprotocol for WebSockets), like an API key. Holding the socket makes
// this process the owner, so the token grants what the owner may do: every request is still an
// ordinary API call, answered by the daemon. The dashboard's files (/ui/) need no token.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { spawn } from 'node:child_process';
import { createServer, request, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Command } from 'commander';
import { daemonPaths, ping } from '../../daemon/daemon-process.ts';
import { CorralError } from '../../protocol/errors.ts';
import { parseDuration } from '../../protocol/units.ts';
import { defaultHome } from '../../store/corral-store.ts';
import type { CliContext } from '../context.ts';
import { examples } from '../output.ts';

export interface DashboardProxyOptions {
  /** The daemon's Unix socket. */
  socketPath: string;
  /** The loopback port (0: a free one). */
  port?: number;
  /** How long the token is accepted, in ms (default 12 hours). */
  ttlMs?: number;
}

export interface DashboardProxy {
  /** The dashboard's address with the token in the fragment: what the browser opens. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  close(): Promise<void>;
}

const DEFAULT_TTL_MS = 12 * 3600_000;
// Hop-by-hop headers (RFC 9110 §7.6.1) and the credential: never passed on to the daemon.
const DROP = new Set(['authorization', 'connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'proxy-authorization']);

function sameSecret(given: string | undefined, token: string): boolean {
  if (given === undefined) return false;
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function plain(res: import('node:http').ServerResponse, status: number, code: string, message: string): void {
  const body = JSON.stringify({ error: { code, message, details: {}, requestId: null } });
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store', ...(status === 401 ? { 'www-authenticate': 'Bearer realm="corral-dashboard"' } : {}) });
  res.end(body);
}

/** Starts the loopback proxy in front of the daemon's socket. */
export async function startDashboardProxy(options: DashboardProxyOptions): Promise<DashboardProxy> {
  const token = 'crl_' + randomBytes(32).toString('base64url');
  const expires = Date.now() + (options.ttlMs ?? DEFAULT_TTL_MS);
  let port = 0;
  // DNS rebinding: a page of another site resolving its name to 127.0.0.1 sends its own Host.
  const hostOk = (host: string | undefined) => host === `127.0.0.1:${port}` || host === `localhost:${port}`;
  const valid = (secret: string | undefined) => Date.now() < expires && sameSecret(secret, token);
  const bearer = (h: IncomingHttpHeaders) => /^Bearer +(\S+) *$/i.exec(h.authorization ?? '')?.[1];

  const forwardHeaders = (h: IncomingHttpHeaders): Record<string, string | string[]> => {
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(h)) if (v !== undefined && !DROP.has(k)) out[k] = v;
    return out;
  };

  const server: Server = createServer((req, res) => {
    if (!hostOk(req.headers.host)) return plain(res, 421, 'INVALID_ARGUMENT', 'open the dashboard at the address corral dashboard printed');
    const path = req.url ?? '/';
    if (path === '/' || path === '') {
      res.writeHead(302, { location: '/ui/' });
      return res.end();
    }
    const isUi = path === '/ui' || path.startsWith('/ui/') || path.startsWith('/ui?');
    if (!isUi && !valid(bearer(req.headers)))
      return plain(res, 401, 'UNAUTHENTICATED', 'the dashboard token is missing, wrong or expired: run corral dashboard again and open the address it prints');
    const upstream = request({ socketPath: options.socketPath, path, method: req.method, headers: forwardHeaders(req.headers) }, (up) => {
      const headers = { ...up.headers };
      delete headers.connection;
      delete headers['keep-alive'];
      res.writeHead(up.statusCode ?? 502, headers);
      up.pipe(res);
      // Server-Sent Events: the browser going away ends the daemon's stream too.
      res.on('close', () => up.destroy());
    });
    upstream.on('error', () => {
      if (!res.headersSent) plain(res, 503, 'UNAVAILABLE', 'the daemon does not answer on its socket: is it running? (corral daemon status)');
      else res.destroy();
    });
    req.pipe(upstream);
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const refuse = (status: string) => {
      socket.end(`HTTP/1.1 ${status}\r\nconnection: close\r\ncontent-length: 0\r\n\r\n`);
    };
    if (!hostOk(req.headers.host)) return refuse('421 Misdirected Request');
    const protocols = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim()).filter(Boolean);
    const secret = bearer(req.headers) ?? protocols.find((p) => p.startsWith('corral.key.'))?.slice('corral.key.'.length);
    if (!valid(secret)) return refuse('401 Unauthorized');
    const rest = protocols.filter((p) => !p.startsWith('corral.key.'));
    const lines = [`${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/1.1`];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      const name = req.rawHeaders[i]!;
      const lower = name.toLowerCase();
      if (lower === 'authorization' || lower === 'sec-websocket-protocol') continue;
      lines.push(`${name}: ${req.rawHeaders[i + 1]}`);
    }
    if (rest.length) lines.push(`Sec-WebSocket-Protocol: ${rest.join(', ')}`);
    const up = connect(options.socketPath);
    up.on('connect', () => {
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
    socket.on('close', () => up.destroy());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/ui/#key=${token}`,
    port,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Opens `url` in the desktop's browser when there is a desktop; false when none was tried. */
function openBrowser(url: string): boolean {
  if (process.platform === 'linux' && !process.env.DISPLAY && !process.env.WAYLAND_DISPLAY) return false;
  const cmd = process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
  try {
    const child = spawn(cmd, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
    return true;
  } catch {
    return false;
  }
}

export function registerDashboardCommands(program: Command, ctx: CliContext): void {
  program
    .command('dashboard')
    .description('open the web dashboard of the running daemon: a loopback port with a one-time sign-in link')
    .option('--port <port>', 'the loopback port (default: a free one)')
    .option('--ttl <duration>', 'how long the link is accepted (default 12h)')
    .option('--no-open', 'print the link without opening a browser')
    .addHelpText(
      'after',
      `
The daemon's Unix socket lets only its owner in, so this command listens on 127.0.0.1 and passes
requests to the socket, for a browser holding the token of the printed link (in its #fragment, kept
in the tab's sessionStorage). The link works while this command runs (Ctrl-C ends it) and for
--ttl at most. A daemon listening on TCP serves the dashboard itself at /ui/, signed in with an
API key.
${examples('corral daemon start', 'corral dashboard', 'corral dashboard --port 8421 --no-open')}`,
    )
    .action(
      ctx.action(async (opts: { port?: string; ttl?: string; open: boolean }) => {
        const port = opts.port === undefined ? 0 : Number(opts.port);
        if (!Number.isInteger(port) || port < 0 || port > 65535) throw new CorralError('INVALID_ARGUMENT', `--port must be 0-65535, got ${String(opts.port).slice(0, 20)}`, { port: opts.port });
        const ttlMs = opts.ttl === undefined ? DEFAULT_TTL_MS : parseDuration(opts.ttl, 'ttl');
        const { socket } = daemonPaths(defaultHome(), process.env);
        if (!(await ping(socket, 2000)))
          throw new CorralError('DAEMON_NOT_RUNNING', `no daemon answers on ${socket}: start one with corral daemon start`, { socket });
        const proxy = await startDashboardProxy({ socketPath: socket, port, ttlMs });
        const opened = opts.open && openBrowser(proxy.url);
        ctx.out.result({ url: proxy.url, port: proxy.port, expiresAt: new Date(Date.now() + ttlMs).toISOString() }, (d) => [d.url]);
        ctx.out.note(opened ? 'opened the dashboard in your browser; Ctrl-C closes it' : 'open this link in a browser on this machine (it signs you in); Ctrl-C closes it');
        await new Promise<void>((resolve) => {
          const stop = () => {
            process.off('SIGINT', stop);
            process.off('SIGTERM', stop);
            resolve();
          };
          process.on('SIGINT', stop);
          process.on('SIGTERM', stop);
          setTimeout(stop, ttlMs).unref();
        });
        await proxy.close();
      }),
    );
}

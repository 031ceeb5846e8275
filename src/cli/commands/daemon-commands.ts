// corral daemon [run]: serves the HTTP API in the foreground until SIGTERM or SIGINT, then drains
// and exits. corral daemon start|stop|status|logs: the same daemon in the background, found through
// its pid file ($CORRAL_HOME/daemon.pid), logging to $CORRAL_HOME/daemon.log.
import { closeSync, fstatSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command } from 'commander';
import pc from 'picocolors';
import type { DaemonStatus, PidRecord } from '../../daemon/daemon-process.ts';
import type { DaemonFlags } from '../../daemon/daemon-config.ts';
import { CorralError, isCorralError } from '../../protocol/errors.ts';
import { parseDuration } from '../../protocol/units.ts';
import { defaultHome } from '../../store/corral-store.ts';
import { Corral } from '../../services/corral.ts';
import { parseCount, type CliContext } from '../context.ts';
import { escapeControls, examples, type Colors } from '../output.ts';

/** How often the daemon checks sandbox lifetimes and idle timeouts. */
const SWEEP_MS = 2000;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

/** The options of the daemon itself, shared by `run` and `start`. */
function serveOptions(cmd: Command): Command {
  return cmd
    .option('--socket <path>', 'the Unix socket to listen on (default: $CORRAL_HOME/corral.sock; env CORRAL_DAEMON_SOCKET)')
    .option('--port <port>', 'also listen on TCP at this port, 0 picks a free one (env CORRAL_DAEMON_PORT)')
    .option('--host <address>', 'the TCP address (default 127.0.0.1); another than loopback needs --tls-cert/--tls-key or --insecure-bind (env CORRAL_DAEMON_HOST)')
    .option('--tls-cert <file>', 'serve TCP as HTTPS with this PEM certificate (chain) (env CORRAL_DAEMON_TLS_CERT)')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert (env CORRAL_DAEMON_TLS_KEY)')
    .option('--insecure-bind', 'allow a non-loopback --host without TLS: API keys then cross the network in clear text (env CORRAL_DAEMON_INSECURE_BIND=1)')
    .option('--drain-ms <ms>', 'on SIGTERM/SIGINT, how long requests in flight may finish (default 10000; env CORRAL_DAEMON_DRAIN_MS)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info; env CORRAL_LOG_LEVEL)')
    .option('--pid-file <path>', 'the pid file the daemon keeps while it runs (default: $CORRAL_HOME/daemon.pid; env CORRAL_DAEMON_PID_FILE)');
}

function formatUptime(seconds: number): string {
  const s = Math.floor(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = d ? [`${d}d`, `${h}h`] : h ? [`${h}h`, `${m}m`] : m ? [`${m}m`, `${s % 60}s`] : [`${s}s`];
  return parts.join(' ');
}

function tcpUrl(tcp: PidRecord['tcp']): string | null {
  if (!tcp) return null;
  const host = tcp.host.includes(':') ? `[${tcp.host}]` : tcp.host;
  return `${tcp.tls ? 'https' : 'http'}://${host}:${tcp.port}`;
}

function statusLines(s: DaemonStatus, c: Colors): string[] {
  if (!s.running) return [`${c.dim('not running')}  (socket ${escapeControls(s.socket)})`];
  const lines = [
    `${c.green('running')}  pid ${s.pid ?? '?'}${s.version ? `, version ${escapeControls(s.version)}` : ''}${s.uptimeSeconds !== null ? `, up ${formatUptime(s.uptimeSeconds)}` : ''}`,
    `socket   ${escapeControls(s.socket)}${s.answering ? '' : c.yellow('  (not answering)')}`,
  ];
  const url = tcpUrl(s.tcp);
  if (url) lines.push(`tcp      ${escapeControls(url)}`);
  lines.push(`log      ${escapeControls(s.logFile)}`);
  return lines;
}

// ---- logs ------------------------------------------------------------------------------------

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };

/** One pino JSON line as text: time, level, message, then the other fields as key=value; other lines as they are. */
export function formatLogLine(line: string, c: Colors): string {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return escapeControls(line);
  }
  if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) return escapeControls(line);
  const { time, level, msg, pid: _pid, hostname: _host, err, ...rest } = entry as Record<string, unknown>;
  const when = typeof time === 'number' && Number.isFinite(time) ? new Date(time).toISOString() : '';
  const name = typeof level === 'number' ? (LEVELS[level] ?? String(level)) : String(level ?? '');
  const paint = typeof level === 'number' && level >= 50 ? c.red : level === 40 ? c.yellow : level === 30 ? c.green : c.dim;
  const fields = Object.entries(rest).map(([k, v]) => `${c.dim(`${escapeControls(k)}=`)}${escapeControls(typeof v === 'string' ? v : JSON.stringify(v) ?? 'undefined')}`);
  let text = `${c.dim(when)} ${paint(name.padEnd(5))} ${escapeControls(typeof msg === 'string' ? msg : '')}${fields.length ? ' ' + fields.join(' ') : ''}`;
  if (err && typeof err === 'object') {
    const e = err as { message?: unknown; stack?: unknown };
    const stack = typeof e.stack === 'string' ? e.stack : typeof e.message === 'string' ? e.message : JSON.stringify(err);
    text += '\n' + stack.split('\n').map((l) => `    ${escapeControls(l)}`).join('\n');
  }
  return text;
}

/** Reads whole lines of `path` from `offset` up to its current end; returns where the next read starts (after the last newline). */
function readLines(path: string, offset: number, onLine: (line: string) => void): { offset: number; ino: number } | undefined {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    let pos = offset > st.size ? 0 : offset;
    let carry = Buffer.alloc(0);
    const buf = Buffer.alloc(1024 * 1024);
    while (pos < st.size) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, st.size - pos), pos);
      if (n === 0) break;
      pos += n;
      let chunk = Buffer.concat([carry, buf.subarray(0, n)]);
      let nl: number;
      while ((nl = chunk.indexOf(0x0a)) >= 0) {
        onLine(chunk.subarray(0, nl).toString('utf8'));
        chunk = chunk.subarray(nl + 1);
      }
      carry = Buffer.from(chunk);
    }
    // A line still being written is read again next time.
    return { offset: pos - carry.length, ino: st.ino };
  } finally {
    closeSync(fd);
  }
}

/** Prints lines appended to `path` until `signal` aborts; starts over when the file is replaced (rotated) or shrinks. */
async function followLog(path: string, from: { offset: number; ino: number } | undefined, onLine: (line: string) => void, signal: AbortSignal): Promise<void> {
  let at = from;
  while (!signal.aborted) {
    let st;
    try {
      st = statSync(path);
    } catch {
      st = undefined;
    }
    if (st) {
      const offset = at && at.ino === st.ino && st.size >= at.offset ? at.offset : 0;
      at = readLines(path, offset, onLine) ?? at;
    }
    await sleep(200, undefined, { signal }).catch(() => undefined);
  }
}

// ---- the commands ----------------------------------------------------------------------------

type RunOptions = DaemonFlags;
interface StartOptions extends DaemonFlags {
  timeout?: string;
}

export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  const daemon = program
    .command('daemon')
    .description('the Corral daemon: the HTTP API on a Unix socket (mode 0600) and optionally TCP; runs in the foreground, or in the background with start/stop')
    .addHelpText(
      'after',
      `
Without a subcommand, \`corral daemon [options]\` is \`corral daemon run [options]\` (the foreground).
${examples('corral daemon', 'corral daemon start --port 8420', 'corral daemon status --json', 'corral daemon logs --follow', 'corral daemon stop', 'curl --unix-socket ~/.corral/corral.sock http://corral/v1/ping')}`,
    );

  serveOptions(daemon.command('run', { isDefault: true }).description('run the daemon in the foreground until SIGTERM or Ctrl-C (then it drains and exits 0)'))
    .addHelpText(
      'after',
      `
Logs are JSON lines (pino) on stderr. The daemon keeps a pid file while it runs, so
\`corral daemon status\` and \`corral daemon stop\` find it whichever way it was started.
${examples('corral daemon run', 'corral daemon run --port 8420', 'corral daemon run --host 0.0.0.0 --port 8443 --tls-cert cert.pem --tls-key key.pem')}`,
    )
    .action(ctx.action(async (opts: RunOptions) => runForeground(ctx, opts)));

  serveOptions(daemon.command('start').description('start the daemon in the background, wait until it answers, and print where it listens'))
    .option('--timeout <duration>', 'how long to wait for it to answer: 500ms, 10s, 1m (default 30s)')
    .addHelpText(
      'after',
      `
The daemon runs in its own session; its JSON log goes to $CORRAL_HOME/daemon.log (moved to
daemon.log.1 at start when over 10 MiB). If it is already running, start says so and exits 0.
${examples('corral daemon start', 'corral daemon start --port 0 --json')}`,
    )
    .action(
      ctx.action(async (opts: StartOptions) => {
        const [{ parseDaemonConfig, daemonRunArgs }, { daemonStatus, inspectPidFile, ping, spawnDaemon }] = await Promise.all([
          import('../../daemon/daemon-config.ts'),
          import('../../daemon/daemon-process.ts'),
        ]);
        const config = parseDaemonConfig({ home: defaultHome(), flags: opts, env: process.env });
        const timeoutMs = opts.timeout === undefined ? 30_000 : parseDuration(opts.timeout, 'timeout');
        if (config.port !== null && config.tlsCert === null && !config.insecureBind) {
          // Refused here, not only by the child, so the message comes at once and without a log to read.
          const { isLoopback } = await import('../../daemon/daemon-server.ts');
          if (!isLoopback(config.host))
            throw new CorralError('INVALID_ARGUMENT', `refusing to listen on ${config.host} without TLS: API keys would cross the network in clear text. Give --tls-cert and --tls-key, or accept the risk with --insecure-bind`, { host: config.host });
        }
        const paths = { pidFile: config.pidFile, logFile: config.logFile, socket: config.socket };
        const before = inspectPidFile(config.pidFile);
        if (before.kind === 'live' || (await ping(config.socket, 1000))) {
          const s = await daemonStatus(paths);
          ctx.out.result({ ...s, started: false }, (d, c) => [`${c.dim('already running')}`, ...statusLines(d, c)]);
          return;
        }
        const main = fileURLToPath(new URL('../main.ts', import.meta.url));
        let record: PidRecord;
        try {
          record = await spawnDaemon({
            command: process.execPath,
            args: [...process.execArgv, main, 'daemon', 'run', ...daemonRunArgs(config)],
            env: { ...process.env, CORRAL_HOME: config.home },
            cwd: config.home,
            pidFile: config.pidFile,
            logFile: config.logFile,
            timeoutMs,
          });
        } catch (e) {
          // What the daemon logged says why: shown readably on stderr (--json has it in details.log).
          if (isCorralError(e, 'DAEMON_START_FAILED') && Array.isArray(e.details.log))
            if (!ctx.out.json) {
              const c = pc.createColors(process.stderr.isTTY === true && !process.env.NO_COLOR);
              for (const line of e.details.log as string[]) process.stderr.write(formatLogLine(line, c) + '\n');
            }
          throw e;
        }
        const s = await daemonStatus(paths);
        ctx.out.result({ ...s, running: true, pid: record.pid, socket: record.socket, tcp: record.tcp, version: record.version, started: true }, (d, c) => [
          `corral daemon ${escapeControls(d.version ?? '')} started (pid ${d.pid}), listening on ${escapeControls(d.socket)}${d.tcp ? ` and ${escapeControls(tcpUrl(d.tcp) ?? '')}` : ''}`,
          c.dim(`log: ${escapeControls(d.logFile)}`),
        ]);
      }),
    );

  daemon
    .command('stop')
    .description('stop the background (or foreground) daemon: SIGTERM, wait while it drains, SIGKILL after --timeout')
    .option('--timeout <duration>', 'how long it may take to drain before SIGKILL: 500ms, 10s, 1m (default 30s)')
    .addHelpText('after', `\nNot running is not an error: stop says so and exits 0.\n${examples('corral daemon stop', 'corral daemon stop --timeout 5s --json')}`)
    .action(
      ctx.action(async (opts: { timeout?: string }) => {
        const timeoutMs = opts.timeout === undefined ? 30_000 : parseDuration(opts.timeout, 'timeout');
        const { daemonPaths, ping, stopDaemon } = await import('../../daemon/daemon-process.ts');
        const paths = daemonPaths(defaultHome(), process.env);
        const r = await stopDaemon(paths, { timeoutMs, onKill: (pid) => ctx.out.note(`warning: the daemon (pid ${pid}) did not stop within ${timeoutMs} ms: killing it (SIGKILL); execs still running were cut off`) });
        if (!r.stopped && (await ping(paths.socket, 1000))) {
          throw new CorralError('CONFLICT', `a daemon answers on ${paths.socket} but no pid file names it (${paths.pidFile}): stop it where it was started, or with its --pid-file`, { socket: paths.socket, pidFile: paths.pidFile });
        }
        ctx.out.result(r, (d) => (d.stopped ? `stopped the daemon (pid ${d.pid})${d.forced ? ' with SIGKILL' : ''}` : `no daemon is running${d.staleRemoved ? ' (removed a stale pid file)' : ''}`));
      }),
    );

  daemon
    .command('status')
    .description('whether the daemon runs: pid, socket, TCP address, version, uptime (exit 0 either way)')
    .addHelpText('after', examples('corral daemon status', 'corral daemon status --json'))
    .action(
      ctx.action(async () => {
        const { daemonPaths, daemonStatus } = await import('../../daemon/daemon-process.ts');
        const s = await daemonStatus(daemonPaths(defaultHome(), process.env));
        ctx.out.result(s, statusLines);
      }),
    );

  daemon
    .command('logs')
    .description('print the daemon\'s log: readable text, or the raw JSON lines with --json')
    .option('-f, --follow', 'keep printing new lines until Ctrl-C')
    .option('-n, --lines <n>', 'only the last n lines (default: all)')
    .addHelpText('after', examples('corral daemon logs --lines 50', 'corral daemon logs --follow', 'corral daemon logs --json | jq -c \'select(.level >= 50)\''))
    .action(
      ctx.action(async (opts: { follow?: boolean; lines?: string }) => {
        const { daemonPaths, tailLines } = await import('../../daemon/daemon-process.ts');
        const { logFile } = daemonPaths(defaultHome(), process.env);
        const lines = opts.lines === undefined ? undefined : parseCount(opts.lines, 'lines');
        const print = (line: string) => {
          if (ctx.out.json) process.stdout.write(line + '\n');
          else ctx.out.result(null, () => formatLogLine(line, ctx.out.c));
        };
        let at: { offset: number; ino: number } | undefined;
        if (lines !== undefined) {
          for (const l of tailLines(logFile, lines)) print(l);
          try {
            const st = statSync(logFile);
            at = { offset: st.size, ino: st.ino };
          } catch {
            at = undefined;
          }
        } else {
          at = readLines(logFile, 0, print);
        }
        if (at === undefined) ctx.out.note(`no log at ${logFile} yet: \`corral daemon start\` writes it`);
        if (!opts.follow) return;
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once('SIGINT', onSignal);
        process.once('SIGTERM', onSignal);
        try {
          await followLog(logFile, at, print, stop.signal);
        } finally {
          process.off('SIGINT', onSignal);
          process.off('SIGTERM', onSignal);
        }
      }),
    );
}

/** The foreground daemon: claim the pid file, listen, serve until a signal, drain, release. */
async function runForeground(ctx: CliContext, opts: RunOptions): Promise<void> {
  // Loaded here, not at the top: hono, zod and pino cost every other command ~40 ms to load.
  const [{ pino }, { createApi }, { startDaemonServer }, { parseDaemonConfig }, { CorralMetrics, sandboxStateCounts }, { claimPidFile, processIdentity, releasePidFile, updatePidFile }] = await Promise.all([
    import('pino'),
    import('../../api/api-app.ts'),
    import('../../daemon/daemon-server.ts'),
    import('../../daemon/daemon-config.ts'),
    import('../../api/metrics.ts'),
    import('../../daemon/daemon-process.ts'),
  ]);
  const [{ createExecSocketServer }, { createEventSocketServer }] = await Promise.all([import('../../api/exec-socket.ts'), import('../../api/event-socket.ts')]);
  const config = parseDaemonConfig({ home: defaultHome(), flags: opts, env: process.env });
  const version = packageVersion();
  const startedAt = Date.now();
  const logger = pino({ level: config.logLevel, base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
  const self = processIdentity(process.pid) ?? { pid: process.pid, started: '', boot: '' };
  const record: PidRecord = { ...self, state: 'starting', socket: config.socket, tcp: null, version, startedAt };
  claimPidFile(config.pidFile, record);
  let server: Awaited<ReturnType<typeof startDaemonServer>>;
  let metrics: InstanceType<typeof CorralMetrics> | undefined;
  // The daemon acts for API clients: its commits and audit records say so.
  const corral = new Corral({ caller: { actor: 'daemon', origin: 'api' } });
  // Execs a crashed daemon left running: lost, their output kept, their processes killed.
  const lost = corral.execs.recoverLost();
  if (lost.length > 0) logger.warn({ execs: lost }, 'execs of an earlier daemon that died are marked lost');
  let eventSockets: ReturnType<typeof createEventSocketServer> | undefined;
  const sockets = createExecSocketServer({ execs: corral.execs, keys: corral.keys, logger, count: (stream, n) => metrics?.streamBytes(stream, n) });
  try {
    metrics = new CorralMetrics({ events: corral.events, sandboxCounts: sandboxStateCounts(corral.store.db), startedAt });
    const app = createApi({ corral, logger, version, startedAt, auth: { keys: corral.keys }, metrics });
    const events = createEventSocketServer({ fetch: app.fetch, logger });
    eventSockets = events;
    server = await startDaemonServer({
      fetch: app.fetch,
      socketPath: config.socket,
      ...(config.port !== null ? { tcp: { port: config.port, host: config.host } } : {}),
      ...(config.tlsCert !== null && config.tlsKey !== null ? { tls: { cert: config.tlsCert, key: config.tlsKey } } : {}),
      ...(config.insecureBind ? { allowNonLoopback: true } : {}),
      drainMs: config.drainMs,
      onError: (e) => logger.error({ err: e }, 'server error'),
      upgrade: (req, socket, head, transport) => (events.handles(req.url) ? events : sockets).handleUpgrade(req, socket, head, transport),
    });
    try {
      updatePidFile(config.pidFile, { ...record, state: 'listening', tcp: server.tcp });
    } catch (e) {
      await server.close();
      throw e;
    }
  } catch (e) {
    metrics?.close();
    corral.close();
    releasePidFile(config.pidFile, self);
    throw e;
  }
  // Lifetimes, idle auto-stop: checked every few seconds.
  const sweeper = setInterval(() => {
    corral.lifecycle
      .sweep()
      .then((r) => {
        if (r.failed.length > 0) logger.warn({ failed: r.failed }, 'the sandbox sweep could not handle some sandboxes (it tries again)');
      })
      .catch((e: unknown) => logger.warn({ err: e }, 'sandbox sweep failed'));
  }, SWEEP_MS);
  sweeper.unref();
  logger.info({ version, socket: server.socketPath, tcp: server.tcp }, 'daemon listening');
  ctx.out.result({ version, socket: server.socketPath, tcp: server.tcp, pid: process.pid }, (d) => [
    `corral daemon ${d.version} listening on ${d.socket}${d.tcp ? ` and ${tcpUrl(d.tcp)}` : ''}`,
    d.tcp ? `dashboard: ${tcpUrl(d.tcp)}/ui/ (sign in with an API key, or run corral dashboard)` : 'dashboard: run corral dashboard for a sign-in link',
  ]);

  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    const stop = (s: NodeJS.Signals) => {
      process.off('SIGTERM', stop);
      process.off('SIGINT', stop);
      resolve(s);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
  logger.info({ signal }, 'draining');
  clearInterval(sweeper);
  try {
    // No new requests; running execs get the same deadline as requests in flight, then are killed.
    sockets.close();
    eventSockets?.close();
    await Promise.all([server.close(), corral.execs.drain(config.drainMs), corral.lifecycle.cancelPaused()]);
  } finally {
    metrics.close();
    corral.processes.close();
    corral.close();
    releasePidFile(config.pidFile, self);
  }
  logger.info({}, 'daemon stopped');
}

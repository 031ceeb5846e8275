// corral daemon: serves the HTTP API in the foreground until SIGTERM or SIGINT, then drains and exits.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { parseCount, type CliContext } from '../context.ts';
import { examples } from '../output.ts';

interface DaemonOptions {
  socket?: string;
  port?: string;
  host?: string;
  drainMs?: string;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
  return pkg.version ?? '0.0.0';
}

export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  program
    .command('daemon')
    .description('run the Corral daemon in the foreground: the HTTP API on a Unix socket (mode 0600), and optionally on loopback TCP')
    .option('--socket <path>', 'the Unix socket to listen on (default: $CORRAL_HOME/corral.sock)')
    .option('--port <port>', 'also listen on TCP at this port (0 picks a free one)')
    .option('--host <address>', 'the TCP address: a loopback address only (default 127.0.0.1)')
    .option('--drain-ms <ms>', 'on SIGTERM/SIGINT, how long requests in flight may finish (default 10000)')
    .addHelpText(
      'after',
      `
Logs are JSON lines on stderr (level: $CORRAL_LOG_LEVEL, default info). Stop with SIGTERM or Ctrl-C.
${examples('corral daemon', 'corral daemon --port 8420', 'curl --unix-socket ~/.corral/corral.sock http://corral/v1/ping')}`,
    )
    .action(
      ctx.action(async (opts: DaemonOptions) => {
        // Loaded here, not at the top: hono, zod and pino cost every other command ~40 ms to load.
        const [{ pino }, { createApi }, { defaultSocketPath, startDaemonServer }] = await Promise.all([
          import('pino'),
          import('../../api/api-app.ts'),
          import('../../daemon/daemon-server.ts'),
        ]);
        const version = packageVersion();
        const corral = ctx.corral;
        const socketPath = opts.socket ?? defaultSocketPath(corral.store.home);
        const port = opts.port === undefined ? undefined : parseCount(opts.port, 'port');
        if (port !== undefined && port > 65535) throw new CorralError('INVALID_ARGUMENT', `--port must be at most 65535, got ${port}`, { port });
        const drainMs = opts.drainMs === undefined ? undefined : parseCount(opts.drainMs, 'drain-ms');
        const logger = pino({ level: process.env.CORRAL_LOG_LEVEL || 'info', base: { pid: process.pid } }, pino.destination({ dest: 2, sync: true }));
        const app = createApi({ corral, logger, version });
        const server = await startDaemonServer({
          fetch: app.fetch,
          socketPath,
          ...(port !== undefined ? { tcp: { port, ...(opts.host ? { host: opts.host } : {}) } } : {}),
          ...(drainMs !== undefined ? { drainMs } : {}),
          onError: (e) => logger.error({ err: e }, 'server error'),
        });
        logger.info({ version, socket: server.socketPath, tcp: server.tcp }, 'daemon listening');
        ctx.out.result({ version, socket: server.socketPath, tcp: server.tcp, pid: process.pid }, (d) => [
          `corral daemon ${d.version} listening on ${d.socket}${d.tcp ? ` and http://${d.tcp.host}:${d.tcp.port}` : ''}`,
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
        await server.close();
        logger.info({}, 'daemon stopped');
      }),
    );
}

// The daemon's options, parsed once at start-up from the command line and CORRAL_* variables (a
// flag wins over its variable, a variable over the default) and validated by one zod schema.
// Loaded only by the daemon's commands: zod costs every other command's start-up.
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { CorralError } from '../protocol/errors.ts';

export const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const daemonConfigSchema = z
  .object({
    home: z.string().min(1).describe('The Corral home ($CORRAL_HOME): the database, and by default the socket, pid file and log.'),
    socket: z.string().min(1).max(4096).describe('The Unix socket to listen on (mode 0600; default $CORRAL_HOME/corral.sock).'),
    port: z.number().int().min(0).max(65535).nullable().describe('Also listen on TCP at this port (0 picks a free one); null: the Unix socket only.'),
    host: z.string().min(1).max(253).describe('The TCP address (default 127.0.0.1). Another than loopback needs TLS or insecureBind.'),
    tlsCert: z.string().min(1).nullable().describe('PEM file of the TLS certificate (chain): TCP is served as HTTPS. Needs tlsKey.'),
    tlsKey: z.string().min(1).nullable().describe('PEM file of the TLS certificate\'s private key. Needs tlsCert.'),
    insecureBind: z.boolean().describe('Allow a non-loopback TCP address without TLS (API keys then cross the network in clear text).'),
    drainMs: z.number().int().min(0).max(3_600_000).describe('On SIGTERM/SIGINT, how long requests in flight may finish before their connections are cut (default 10000).'),
    logLevel: z.enum(logLevels).describe('The pino log level (default info).'),
    pidFile: z.string().min(1).describe('The pid file the daemon writes while it runs (default $CORRAL_HOME/daemon.pid).'),
    logFile: z.string().min(1).describe('Where `corral daemon start` sends the daemon\'s JSON log (default $CORRAL_HOME/daemon.log).'),
  })
  .strict()
  .describe('How the Corral daemon runs.');
export type DaemonConfig = z.infer<typeof daemonConfigSchema>;

/** The command-line flags, as commander gives them (strings, or true for a bare flag). */
export interface DaemonFlags {
  socket?: string;
  port?: string;
  host?: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureBind?: boolean;
  drainMs?: string;
  logLevel?: string;
  pidFile?: string;
}

/** Each option's flag and environment variable. */
const sources = {
  socket: { flag: '--socket', env: 'CORRAL_DAEMON_SOCKET' },
  port: { flag: '--port', env: 'CORRAL_DAEMON_PORT' },
  host: { flag: '--host', env: 'CORRAL_DAEMON_HOST' },
  tlsCert: { flag: '--tls-cert', env: 'CORRAL_DAEMON_TLS_CERT' },
  tlsKey: { flag: '--tls-key', env: 'CORRAL_DAEMON_TLS_KEY' },
  insecureBind: { flag: '--insecure-bind', env: 'CORRAL_DAEMON_INSECURE_BIND' },
  drainMs: { flag: '--drain-ms', env: 'CORRAL_DAEMON_DRAIN_MS' },
  logLevel: { flag: '--log-level', env: 'CORRAL_LOG_LEVEL' },
  pidFile: { flag: '--pid-file', env: 'CORRAL_DAEMON_PID_FILE' },
  logFile: { flag: '(none)', env: 'CORRAL_DAEMON_LOG_FILE' },
} as const;
type Key = keyof typeof sources;

/** The environment variables the daemon reads, for --help and the docs. */
export const daemonEnvVars: readonly string[] = Object.values(sources).map((s) => s.env);

function bad(message: string, details: Record<string, unknown>): CorralError {
  return new CorralError('INVALID_ARGUMENT', message, details);
}

export interface ParseInput {
  home: string;
  flags?: DaemonFlags;
  env?: Record<string, string | undefined>;
}

/**
 * The daemon's configuration from flags, then CORRAL_* variables, then defaults; every error is
 * INVALID_ARGUMENT naming the flag or variable to fix.
 */
export function parseDaemonConfig({ home: givenHome, flags = {}, env = {} }: ParseInput): DaemonConfig {
  const home = resolve(givenHome);
  const from: Partial<Record<Key, string>> = {};
  /** The raw value and where it came from, or undefined. */
  const pick = (key: Key): string | boolean | undefined => {
    const flag = (flags as Record<string, string | boolean | undefined>)[key];
    if (flag !== undefined) {
      from[key] = sources[key].flag;
      return flag;
    }
    const value = env[sources[key].env];
    if (value !== undefined && value !== '') {
      from[key] = sources[key].env;
      return value;
    }
    return undefined;
  };
  const whole = (key: Key, value: string | boolean | undefined): number | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== 'string' || !/^\d{1,10}$/.test(value.trim())) throw bad(`${from[key]} must be a whole number, got '${String(value).slice(0, 40)}'`, { [key]: String(value).slice(0, 40) });
    return Number(value.trim());
  };
  const bool = (key: Key, value: string | boolean | undefined): boolean | undefined => {
    if (value === undefined || typeof value === 'boolean') return value;
    const v = value.trim().toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(v)) return true;
    if (['0', 'false', 'no', 'off'].includes(v)) return false;
    throw bad(`${from[key]} must be true or false (1 or 0), got '${value.slice(0, 40)}'`, { [key]: value.slice(0, 40) });
  };
  const text = (value: string | boolean | undefined): string | undefined => (typeof value === 'string' ? value : undefined);
  // Paths are made absolute now: the background daemon runs from another directory.
  const path = (value: string | boolean | undefined): string | undefined => (typeof value === 'string' && value !== '' ? resolve(value) : text(value));

  const port = whole('port', pick('port'));
  const host = text(pick('host'));
  const tlsCert = path(pick('tlsCert'));
  const tlsKey = path(pick('tlsKey'));
  const insecureBind = bool('insecureBind', pick('insecureBind'));
  const candidate = {
    home,
    socket: path(pick('socket')) ?? join(home, 'corral.sock'),
    port: port ?? null,
    host: host ?? '127.0.0.1',
    tlsCert: tlsCert ?? null,
    tlsKey: tlsKey ?? null,
    insecureBind: insecureBind ?? false,
    drainMs: whole('drainMs', pick('drainMs')) ?? 10_000,
    logLevel: text(pick('logLevel')) ?? 'info',
    pidFile: path(pick('pidFile')) ?? join(home, 'daemon.pid'),
    logFile: path(pick('logFile')) ?? join(home, 'daemon.log'),
  };
  const parsed = daemonConfigSchema.safeParse(candidate);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const key = String(issue.path[0] ?? '') as Key;
    const where = from[key] ?? (key in sources ? sources[key].flag : key);
    throw bad(`${where}: ${issue.message}`, { option: key, issues: parsed.error.issues.slice(0, 5).map((i) => ({ path: i.path.map(String).join('.'), message: i.message })) });
  }
  const config = parsed.data;
  if ((config.tlsCert === null) !== (config.tlsKey === null)) throw bad('TLS needs both a certificate and its key: give --tls-cert and --tls-key together', { tlsCert: config.tlsCert, tlsKey: config.tlsKey });
  if (config.port === null) {
    const tcpOnly = (['host', 'tlsCert', 'tlsKey'] as const).find((k) => from[k] !== undefined) ?? (insecureBind ? 'insecureBind' : undefined);
    if (tcpOnly) throw bad(`${from[tcpOnly]} applies to TCP: give a TCP port too (--port, or CORRAL_DAEMON_PORT)`, { option: tcpOnly });
  }
  if (!validHost(config.host)) throw bad(`${from.host ?? '--host'} must be an IP address or a host name, got '${config.host.slice(0, 80)}'`, { host: config.host.slice(0, 80) });
  return config;
}

// A host name (RFC 1123 labels) or an IP address; nothing that could smuggle anything else.
function validHost(host: string): boolean {
  return isIP(host) !== 0 || /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(host);
}

/** The flags of `corral daemon run` that reproduce `config` (what `daemon start` hands its child). */
export function daemonRunArgs(config: DaemonConfig): string[] {
  const args = ['--socket', config.socket, '--drain-ms', String(config.drainMs), '--log-level', config.logLevel, '--pid-file', config.pidFile];
  if (config.port !== null) args.push('--port', String(config.port), '--host', config.host);
  if (config.tlsCert !== null && config.tlsKey !== null) args.push('--tls-cert', config.tlsCert, '--tls-key', config.tlsKey);
  if (config.insecureBind) args.push('--insecure-bind');
  return args;
}

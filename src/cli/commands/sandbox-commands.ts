// corral sandbox create|list|show|destroy|exec and corral shell: sandboxes from the command line.
// When a daemon answers on $CORRAL_HOME/corral.sock the commands go through it with the SDK (its
// sandboxes, its execs, its events); otherwise they do the same work in this process. The output is
// the same either way; `--json` answers carry `via` only in the note on stderr.
import { createReadStream, createWriteStream } from 'node:fs';
import { Readable, Transform, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import type { Sandbox } from '../../protocol/api-schemas.ts';
import { CorralError, errorCodes, type ErrorCode } from '../../protocol/errors.ts';
import { execExitCode, type ExecResult } from '../../protocol/exec-result.ts';
import type { SandboxSpec } from '../../services/sandbox-service.ts';
import { parseCount, type CliContext } from '../context.ts';
import { escapeControls, examples, table } from '../output.ts';
import { renderExecSummary } from './exec-commands.ts';

/** A shell's wall-clock limit: a day (an exec's default, 5 minutes, would cut a person off). */
const SHELL_TIMEOUT_MS = 86_400_000;

/** An exec's frames, as either side delivers them. */
type Frame =
  | { type: 'output'; stream: 'stdout' | 'stderr'; bytes: Uint8Array; offset: number }
  | { type: 'exit'; result: ExecResult | null; state: string; exitCode: number | null };

interface ExecSpecCli {
  argv?: string[];
  shell?: string;
  cwd?: string;
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** A terminal session on an exec: typing, resizing, and its frames. */
interface TerminalSession {
  frames: AsyncIterable<Frame>;
  type(bytes: Uint8Array): void;
  resize(cols: number, rows: number): void;
  ack(offset: number): void;
  close(): void;
}

interface Sandboxes {
  via: 'daemon' | 'in-process';
  create(spec: SandboxSpec): Promise<Sandbox>;
  list(filter: { state?: Sandbox['state']; label?: Record<string, string> }): Promise<Sandbox[]>;
  get(id: string): Promise<Sandbox>;
  destroy(id: string, keepFork: boolean): Promise<Sandbox>;
  /** Runs a command; output frames as they come, then the result. */
  exec(id: string, spec: ExecSpecCli, signal: AbortSignal): AsyncIterable<Frame>;
  terminal(id: string, spec: ExecSpecCli & { cols: number; rows: number }): Promise<TerminalSession>;
  /** A tar stream into directory `path` of the sandbox: one commit. */
  upload(id: string, path: string, tar: Readable): Promise<UploadSummary>;
  /** The tar stream of `path` (a directory, or one file) into `out`. */
  download(id: string, path: string, out: Writable): Promise<void>;
  close(): void;
}

interface UploadSummary {
  path: string;
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  commit: string | null;
}

/** The daemon when one answers on the socket (within 300 ms), else this process. */
async function open(ctx: CliContext): Promise<Sandboxes> {
  const { connect, defaultSocketPath } = await import('../../sdk/node.ts');
  const { existsSync } = await import('node:fs');
  const socket = defaultSocketPath();
  if (existsSync(socket)) {
    const client = connect({ socket, timeoutMs: 0 });
    try {
      await client.ping({ timeoutMs: 300 });
      return daemonSandboxes(client);
    } catch {
      client.close();
    }
  }
  return localSandboxes(ctx);
}

function daemonSandboxes(client: import('../../sdk/index.ts').Corral): Sandboxes {
  const info = (s: { toJSON(): Sandbox }) => s.toJSON();
  // Ids and names alike: the API resolves a live sandbox's name.
  const byId = (idOrName: string) => client.sandboxes.get(idOrName);

  return {
    via: 'daemon',
    create: async (spec) => info(await client.sandboxes.create(spec as Parameters<typeof client.sandboxes.create>[0])),
    list: async (f) => (await client.sandboxes.list({ ...(f.state ? { state: f.state } : {}), ...(f.label ? { labels: f.label } : {}) })).map(info),
    get: async (id) => info(await byId(id)),
    destroy: async (id, keepFork) => info(await (await byId(id)).destroy({ keepFork })),
    async *exec(id, spec, signal) {
      const sandbox = await byId(id);
      const stream = sandbox.stream(spec.shell ?? spec.argv!, { ...(spec.cwd ? { cwd: spec.cwd } : {}), ...(spec.env ? { env: spec.env } : {}), ...(spec.timeoutMs ? { timeoutMs: spec.timeoutMs } : {}), signal });
      for await (const f of stream) {
        if (f.type === 'output') yield { type: 'output', stream: f.stream, bytes: f.data, offset: f.offset };
        else if (f.type === 'exit') {
          // The exit frame leaves the output out (it was streamed): the envelope has it.
          const record = await client.execs.get(f.exec.id);
          const full = await record.info();
          yield { type: 'exit', result: full.result as ExecResult | null, state: full.state, exitCode: full.exitCode };
        }
      }
    },
    async terminal(id, spec) {
      const sandbox = await byId(id);
      const term = await sandbox.pty.create({ cols: spec.cols, rows: spec.rows, cmd: spec.shell ?? spec.argv!, timeoutMs: spec.timeoutMs ?? SHELL_TIMEOUT_MS, ...(spec.env ? { env: spec.env } : {}), ...(spec.cwd ? { cwd: spec.cwd } : {}) });
      return {
        frames: (async function* (): AsyncGenerator<Frame> {
          let offset = 0;
          // The SDK acknowledges what is read, so the daemon's flow control follows this terminal.
          for await (const chunk of term) {
            yield { type: 'output', stream: 'stdout', bytes: chunk, offset };
            offset += chunk.length;
          }
          const record = await term.wait();
          yield { type: 'exit', result: record.result as ExecResult | null, state: record.state, exitCode: record.exitCode };
        })(),
        type: (bytes) => term.write(bytes),
        resize: (cols, rows) => term.resize(cols, rows),
        ack: () => {},
        close: () => void term.close(),
      };
    },
    async upload(id, path, tar) {
      const r = await (await byId(id)).files.upload(path, Readable.toWeb(tar) as ReadableStream<Uint8Array>);
      return { path: r.path, files: r.files, dirs: r.dirs, symlinks: r.symlinks, bytes: r.bytes, commit: r.commit };
    },
    async download(id, path, out) {
      const body = await (await byId(id)).files.download(path);
      await pipeline(Readable.fromWeb(body as import('node:stream/web').ReadableStream<Uint8Array>), out);
    },
    close: () => client.close(),
  };
}

function localSandboxes(ctx: CliContext): Sandboxes {
  const corral = ctx.corral;
  async function* frames(id: string, signal?: AbortSignal): AsyncGenerator<Frame> {
    for await (const f of corral.execs.frames(id, {}, { follow: true, ...(signal ? { signal } : {}) })) {
      if (f.type === 'output') yield { type: 'output', stream: f.stream, bytes: f.data, offset: f.offset };
      else if (f.type === 'exit') yield { type: 'exit', result: f.exec.result, state: f.exec.state, exitCode: f.exec.exitCode };
    }
  }
  return {
    via: 'in-process',
    create: async (spec) => corral.sandboxes.create(spec),
    list: async (f) => corral.sandboxes.list({ ...(f.state ? { state: f.state } : {}), ...(f.label ? { label: f.label } : {}) }),
    get: async (id) => corral.sandboxes.get(id),
    destroy: (id, keepFork) => corral.execs.destroySandbox(id, { keepFork }),
    exec(id, spec, signal) {
      const { info } = corral.execs.start(id, { ...spec, signal });
      return frames(info.id);
    },
    async terminal(id, spec) {
      const { info } = corral.execs.start(id, { timeoutMs: SHELL_TIMEOUT_MS, ...spec, tty: { cols: spec.cols, rows: spec.rows }, openStdin: true, background: true });
      return {
        frames: frames(info.id),
        type: (bytes) => corral.execs.writeStdin(info.id, bytes),
        resize: (cols, rows) => corral.execs.resize(info.id, cols, rows),
        ack: () => {},
        close: () => {},
      };
    },
    async upload(id, path, tar) {
      const r = await corral.sandboxFiles.upload(id, path, tar, { tenant: null });
      return { path: r.path, files: r.files, dirs: r.dirs, symlinks: r.symlinks, bytes: r.bytes, commit: r.commit?.id ?? null };
    },
    async download(id, path, out) {
      await corral.sandboxFiles.download(id, path, { tenant: null }).pipe(out);
    },
    close: () => {},
  };
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function pairs(list: string[], what: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of list) {
    const at = p.indexOf('=');
    if (at <= 0) throw new CorralError('INVALID_ARGUMENT', `--${what} takes NAME=VALUE, got '${p.slice(0, 60)}'`, {});
    out[p.slice(0, at)] = p.slice(at + 1);
  }
  return out;
}

function sandboxLines(s: Sandbox): string[] {
  return [
    `${s.id}${s.name ? ` (${s.name})` : ''}: ${s.state}`,
    `  vault    ${s.vault}${s.forked ? ` (its own fork of ${s.sourceVault ?? 'a new vault'})` : ''}`,
    `  backend  ${s.backend}, policy ${s.policy}, network ${s.network}`,
    ...(Object.keys(s.labels).length ? [`  labels   ${Object.entries(s.labels).map(([k, v]) => `${k}=${escapeControls(v)}`).join(' ')}`] : []),
    `  created  ${s.createdAt}${s.expiresAt ? `, expires ${s.expiresAt}` : ''}`,
  ];
}

interface CreateOptions {
  fork: boolean;
  name?: string;
  backend?: string;
  policy?: string;
  network?: boolean;
  env: string[];
  label: string[];
  ttl?: string;
}

export function registerSandboxCommands(program: Command, ctx: CliContext): void {
  const sb = program
    .command('sandbox')
    .description('sandboxes: a vault (by default its own fork) and how its commands run; through the daemon when one runs')
    .addHelpText('after', examples('corral sandbox create --vault app --name web', 'corral sandbox exec web -- npm test', 'corral shell web', 'corral sandbox destroy web'));

  const withSandboxes = async <T>(fn: (s: Sandboxes) => Promise<T>): Promise<T> => {
    const s = await open(ctx);
    try {
      return await fn(s);
    } catch (e) {
      // The daemon's error envelope, as the in-process error it stands for: the same message and exit code.
      const { isCorralApiError } = await import('../../sdk/sdk-errors.ts');
      if (isCorralApiError(e) && e.code in errorCodes) throw new CorralError(e.code as ErrorCode, e.message, e.details);
      throw e;
    } finally {
      s.close();
    }
  };

  sb.command('create')
    .description('create a sandbox on --vault (its own fork of it by default; without --vault, a new empty vault); no process starts until a command runs')
    .option('--no-fork', 'work on the vault itself instead of its own fork')
    .option('--name <name>', 'a name to use instead of the id')
    .option('--backend <name>', 'auto, host or namespace (default auto)')
    .option('--policy <preset>', 'a policy preset (default workstation)')
    .option('--network', 'share the host network (default none)')
    .option('--env <NAME=VALUE>', 'a variable for every command (repeatable)', collect, [])
    .option('--label <key=value>', 'a label (repeatable)', collect, [])
    .option('--ttl <seconds>', 'destroy it after this many seconds')
    .addHelpText('after', examples('corral sandbox create --vault app --name web --label team=a', 'corral sandbox create --json'))
    .action(
      ctx.action((opts: CreateOptions) =>
        withSandboxes(async (s) => {
          const vault = ctx.globals.vault;
          const spec: SandboxSpec = {
            ...(vault ? { vault } : {}),
            fork: opts.fork,
            ...(opts.name ? { name: opts.name } : {}),
            ...(opts.backend ? { backend: opts.backend as SandboxSpec['backend'] } : {}),
            ...(opts.policy ? { policy: opts.policy } : {}),
            ...(opts.network ? { network: 'host' as const } : {}),
            ...(opts.env.length ? { env: pairs(opts.env, 'env') } : {}),
            ...(opts.label.length ? { labels: pairs(opts.label, 'label') } : {}),
            ...(opts.ttl ? { ttlSeconds: parseCount(opts.ttl, 'ttl') } : {}),
          };
          ctx.out.result(await s.create(spec), sandboxLines);
        }),
      ),
    );

  sb.command('list')
    .alias('ls')
    .description('list the live sandboxes (or those in --state)')
    .option('--state <state>', 'ready, paused or destroyed')
    .option('--label <key=value>', 'only those with this label (repeatable)', collect, [])
    .addHelpText('after', examples('corral sandbox list', 'corral sandbox list --label team=a --json', 'corral sandbox list --state destroyed'))
    .action(
      ctx.action((opts: { state?: string; label: string[] }) =>
        withSandboxes(async (s) => {
          const list = await s.list({ ...(opts.state ? { state: opts.state as Sandbox['state'] } : {}), ...(opts.label.length ? { label: pairs(opts.label, 'label') } : {}) });
          ctx.out.result({ sandboxes: list }, (d, c) =>
            d.sandboxes.length ? table([['ID', 'NAME', 'STATE', 'VAULT', 'BACKEND', 'CREATED'], ...d.sandboxes.map((x) => [x.id, x.name ?? '', x.state, x.vault, x.backend, x.createdAt])]).map((l, i) => (i === 0 ? c.dim(l) : l)) : 'no sandboxes',
          );
        }),
      ),
    );

  sb.command('show <sandbox>')
    .alias('info')
    .description('show one sandbox (by id or name)')
    .addHelpText('after', examples('corral sandbox show web', 'corral sandbox show sbx_01k… --json'))
    .action(ctx.action((id: string) => withSandboxes(async (s) => ctx.out.result(await s.get(id), sandboxLines))));

  sb.command('destroy <sandbox>')
    .alias('rm')
    .description('destroy a sandbox: its commands are ended, its own fork deleted (unless --keep-fork)')
    .option('--keep-fork', 'keep its vault')
    .addHelpText('after', examples('corral sandbox destroy web', 'corral sandbox destroy web --keep-fork'))
    .action(ctx.action((id: string, opts: { keepFork?: boolean }) => withSandboxes(async (s) => ctx.out.result(await s.destroy(id, opts.keepFork === true), (d) => `destroyed ${d.id}${opts.keepFork ? ` (kept ${d.vault})` : ''}`))));

  sb.command('exec <sandbox> [argv...]')
    .description("run a command in a sandbox; its output streams as it comes; exit code: the command's")
    .option('--shell <script>', 'run a shell string with bash -c')
    .option('--cwd <path>', 'working directory inside the workspace')
    .option('--env <NAME=VALUE>', 'add a variable (repeatable)', collect, [])
    .option('--timeout <ms>', 'wall-clock limit in ms (default 300000)')
    .addHelpText('after', examples('corral sandbox exec web -- ls -la', "corral sandbox exec web --shell 'npm test 2>&1 | tail'", 'corral sandbox exec web --json -- cat README.md'))
    .action(
      ctx.action((id: string, argv: string[], opts: { shell?: string; cwd?: string; env: string[]; timeout?: string }) =>
        withSandboxes(async (s) => {
          if ((opts.shell === undefined) === (argv.length === 0)) throw new CorralError('INVALID_ARGUMENT', 'give a command: argv after --, or --shell, not both', {});
          const spec: ExecSpecCli = {
            ...(opts.shell !== undefined ? { shell: opts.shell } : { argv }),
            ...(opts.cwd ? { cwd: opts.cwd } : {}),
            ...(opts.env.length ? { env: pairs(opts.env, 'env') } : {}),
            ...(opts.timeout ? { timeoutMs: parseCount(opts.timeout, 'timeout') } : {}),
          };
          const abort = new AbortController();
          const onSignal = (): void => abort.abort();
          process.once('SIGINT', onSignal);
          const json = ctx.globals.json === true;
          try {
            let result: ExecResult | null = null;
            for await (const f of s.exec(id, spec, abort.signal)) {
              if (f.type === 'output' && !json) (f.stream === 'stdout' ? process.stdout : process.stderr).write(f.bytes);
              if (f.type === 'exit') result = f.result;
            }
            if (!result) throw new CorralError('EXEC_FAILED', 'the exec ended without a result (the daemon went away?): see corral daemon logs', {});
            if (json) process.stdout.write(JSON.stringify(result, null, 2) + '\n');
            else process.stderr.write(renderExecSummary(result, ctx.out.c).join('\n') + '\n');
            ctx.exitCode = execExitCode(result);
          } finally {
            process.off('SIGINT', onSignal);
          }
        }),
      ),
    );

  /** Counts the bytes going through, for the progress line. */
  const counted = (label: string) => {
    const progress = ctx.out.progress(label);
    let n = 0;
    // A transform, not a 'data' listener: that would start the flow before the consumer is there.
    const through = new Transform({
      transform(chunk: Buffer, _encoding, done) {
        progress.update((n += chunk.length));
        done(null, chunk);
      },
    });
    return { through, stop: () => progress.stop(), bytes: () => n };
  };

  sb.command('upload <sandbox> <tar> [path]')
    .description("write a tar stream (a file, or '-' for stdin) into a directory of the sandbox (default /): one commit; progress in bytes")
    .addHelpText('after', examples('corral sandbox upload web project.tar /', 'tar -C ./src -cf - . | corral sandbox upload web - /src'))
    .action(
      ctx.action((id: string, tar: string, path: string | undefined) =>
        withSandboxes(async (s) => {
          if (tar === '-' && process.stdin.isTTY) throw new CorralError('INVALID_ARGUMENT', "'-' reads a tar stream from stdin, but stdin is a terminal: pipe one in (tar -cf - DIR | corral sandbox upload SANDBOX -)", {});
          const input = tar === '-' ? process.stdin : createReadStream(tar);
          const c = counted('uploading');
          input.on('error', (e: Error) => c.through.destroy(e));
          input.pipe(c.through);
          try {
            const r = await s.upload(id, path ?? '/', c.through);
            ctx.out.result(r, (d) => `uploaded ${d.files} files, ${d.dirs} directories, ${d.symlinks} links (${d.bytes} bytes) into ${d.path}${d.commit ? ` (commit ${d.commit.slice(0, 12)})` : ''}`);
          } finally {
            c.stop();
          }
        }),
      ),
    );

  sb.command('download <sandbox> [path]')
    .description("a directory (or file) of the sandbox as a tar stream, to --tar FILE or '-' (stdout); progress in bytes")
    .option('--tar <file>', "where to write the tar: a file, or '-' for stdout", '-')
    .addHelpText('after', examples('corral sandbox download web /src | tar -C ./out -xf -', 'corral sandbox download web / --tar snapshot.tar'))
    .action(
      ctx.action((id: string, path: string | undefined, opts: { tar: string }) =>
        withSandboxes(async (s) => {
          if (opts.tar === '-' && process.stdout.isTTY) throw new CorralError('INVALID_ARGUMENT', 'the tar stream would go to a terminal: redirect it (> FILE), pipe it (| tar -xf -) or give --tar FILE', {});
          const out = opts.tar === '-' ? process.stdout : createWriteStream(opts.tar, { flags: 'wx' });
          const c = counted('downloading');
          try {
            const done = pipeline(c.through, out);
            await s.download(id, path ?? '/', c.through);
            await done;
          } finally {
            c.stop();
          }
          // The data went to stdout (or the file): the summary goes to stderr.
          if (opts.tar !== '-') ctx.out.result({ path: path ?? '/', bytes: c.bytes(), file: opts.tar }, (d) => `wrote ${d.bytes} bytes of tar to ${d.file}`);
          else ctx.out.note(`downloaded ${c.bytes()} bytes of tar`);
        }),
      ),
    );

  program
    .command('shell <sandbox>')
    .description('an interactive shell in a sandbox, on a real terminal (resized with yours; exit code propagated)')
    .option('--cmd <program>', 'what to run instead of bash -i', 'bash')
    .addHelpText('after', examples('corral shell web', 'corral shell sbx_01k… --cmd sh'))
    .action(
      ctx.action((id: string, opts: { cmd: string }) =>
        withSandboxes(async (s) => {
          const out = process.stdout;
          const cols = out.columns || 80;
          const rows = out.rows || 24;
          const argv = opts.cmd === 'bash' ? ['bash', '-i'] : [opts.cmd];
          // HISTFILE off: a shell's history would otherwise become part of the workspace's changes.
          const session = await s.terminal(id, { argv, env: { HISTFILE: '/dev/null' }, cols, rows });
          const input = process.stdin;
          const raw = input.isTTY;
          if (raw) input.setRawMode(true);
          const onData = (b: Buffer): void => session.type(b);
          const onResize = (): void => session.resize(out.columns || 80, out.rows || 24);
          input.on('data', onData);
          input.resume();
          process.on('SIGWINCH', onResize);
          let code: number | null = null;
          let seen = 0;
          try {
            for await (const f of session.frames) {
              if (f.type === 'output') {
                out.write(f.bytes);
                seen = f.offset + f.bytes.length;
                session.ack(seen);
              } else if (f.type === 'exit') code = f.result ? execExitCode(f.result) : 125;
            }
          } finally {
            process.off('SIGWINCH', onResize);
            input.off('data', onData);
            if (raw) input.setRawMode(false);
            input.pause();
            session.close();
          }
          ctx.exitCode = code ?? 125;
        }),
      ),
    );
}

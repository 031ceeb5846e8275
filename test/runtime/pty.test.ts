// Real pseudo-terminals for execs, on both backends: the supervisor that is the command's parent
// makes the terminal (inside the sandbox for the namespace backend), relays it with bounded
// buffers, resizes it, types ^D on EOF, and drains it before the exit is reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backend, ExecSpec, RunResult, Sandbox } from '../../src/runtime/backend.ts';
import { HostBackend } from '../../src/runtime/host-backend.ts';
import { NamespaceBackend } from '../../src/runtime/namespace-backend.ts';
import { buildBwrapArgs } from '../../src/runtime/bwrap-args.ts';
import { supervisorArgs, terminalControlFd, type ExecEvent } from '../../src/runtime/supervisor.ts';
import type { TerminalControl } from '../../src/runtime/terminal-control.ts';
import { descendants } from '../../src/runtime/process-tree.ts';
import { isCorralError } from '../../src/protocol/errors.ts';
import { tempDir } from '../helpers.ts';

const env = { PATH: '/usr/bin:/bin', SHLVL: '1', HOME: '/tmp', LANG: 'C.UTF-8' };
const spec = (argv: string[], extra: Partial<ExecSpec> = {}): ExecSpec => ({ argv, cwd: '/', env, timeoutMs: 20_000, graceMs: 300, outputCap: 1 << 20, limits: {}, tty: { cols: 80, rows: 24 }, ...extra });

const namespaceCaps = await new NamespaceBackend().probe();
const backends: { name: string; make: () => Backend; skip: string | false }[] = [
  { name: 'host', make: () => new HostBackend(), skip: false },
  { name: 'namespace', make: () => new NamespaceBackend(), skip: namespaceCaps.available ? false : `namespace backend unavailable: ${namespaceCaps.reason}` },
];

async function sandbox(b: Backend): Promise<Sandbox> {
  return b.create({ checkout: tempDir(), readonly: false, network: false, limits: {}, bestEffort: false });
}

/** An exec with its terminal handle and its output so far, and a way to wait for some output. */
function session(sb: Sandbox, argv: string[], extra: Partial<ExecSpec> = {}) {
  let out = '';
  let waiter: { re: RegExp; from: number; resolve: (m: string) => void } | undefined;
  let terminal: TerminalControl | undefined;
  let supervisorPid = 0;
  const events: ExecEvent['type'][] = [];
  let gotTerminal: (t: TerminalControl) => void = () => undefined;
  const ready = new Promise<TerminalControl>((r) => (gotTerminal = r));
  const check = (): void => {
    if (!waiter) return;
    const m = waiter.re.exec(out.slice(waiter.from));
    if (m) {
      const w = waiter;
      waiter = undefined;
      w.resolve(m[0]);
    }
  };
  const result = sb.exec(
    spec(argv, {
      ...extra,
      onTerminal: (t) => {
        terminal = t;
        gotTerminal(t);
      },
      onEvent: (e) => {
        events.push(e.type);
        if (e.type === 'started') supervisorPid = e.supervisorPid;
        if (e.type === 'stdout') {
          out += e.data.toString('utf8');
          check();
        }
      },
    }),
  );
  let mark = 0;
  return {
    result,
    ready,
    events,
    get out() {
      return out;
    },
    get terminal() {
      return terminal!;
    },
    get supervisorPid() {
      return supervisorPid;
    },
    /** Resolves when output written after the last wait matches `re`. */
    waitFor(re: RegExp): Promise<string> {
      const p = new Promise<string>((resolve) => {
        waiter = { re, from: mark, resolve };
        check();
      });
      return p.then((m) => {
        mark = out.length;
        return m;
      });
    },
  };
}

/** Every descendant of `root` with its command name. */
function tree(root: number): { pid: number; comm: string }[] {
  return descendants(root).flatMap((pid) => {
    try {
      return [{ pid, comm: readFileSync(`/proc/${pid}/comm`, 'utf8').trim() }];
    } catch {
      return [];
    }
  });
}

/** CPU ticks (user + system) of a process. */
function ticks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return 0;
  }
}

/** Processes whose command line holds `marker`. */
function processesWith(marker: string): number[] {
  const found: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readFileSync(`/proc/${p}/cmdline`, 'utf8').includes(marker)) found.push(Number(p));
    } catch {
      // gone
    }
  }
  return found;
}

test('supervisorArgs: --pty on the supervisor itself, or the control fd passed through to a passive one inside', () => {
  const base = { env: {}, timeoutMs: 1000, graceMs: 100, outputCap: 10 };
  const host = supervisorArgs({ ...base, argv: ['bash'], terminal: { cols: 100, rows: 30 } });
  assert.deepEqual(host.slice(host.indexOf('--pty'), host.indexOf('--pty') + 4), ['--pty', '100x30', '--pty-control-fd', '4']);
  assert.equal(host[host.indexOf('--extra-fds') + 1], '0', 'the control fd is the supervisor\'s own, not the command\'s');
  const inside = supervisorArgs({ ...base, argv: ['bwrap'], extraFds: [Buffer.from('x')], innerStatus: true, terminal: { cols: 100, rows: 30, inside: true } });
  assert.equal(inside.includes('--pty'), false);
  assert.equal(inside[inside.indexOf('--extra-fds') + 1], '3', 'seccomp, inner status and the control pipe reach bwrap');
  assert.equal(terminalControlFd(1, true), 6);
});

test('buildBwrapArgs: the passive supervisor gets --pty; sizes and fds are checked', () => {
  const b = { workspace: '/w', readonly: false, cwd: '/workspace', argv: ['bash'], env: {}, network: false, tmpSizeBytes: 1 << 20, seccompFd: 4 };
  const args = buildBwrapArgs({ ...b, init: { path: '/usr/bin/corral-run', statusFd: 5, pty: { cols: 80, rows: 24, controlFd: 6 } } });
  assert.deepEqual(args.slice(args.lastIndexOf('/run/corral/init')), ['/run/corral/init', '--passive', '--status-fd', '5', '--pty', '80x24', '--pty-control-fd', '6', '--', 'bash']);
  assert.ok(args.includes('--new-session'), 'bwrap still starts a new session: the terminal is made after it');
  for (const pty of [{ cols: 0, rows: 24, controlFd: 6 }, { cols: 80, rows: 1001, controlFd: 6 }, { cols: 80.5, rows: 24, controlFd: 6 }, { cols: 80, rows: 24, controlFd: 5 }, { cols: 80, rows: 24, controlFd: 4 }])
    assert.throws(() => buildBwrapArgs({ ...b, init: { path: '/usr/bin/corral-run', statusFd: 5, pty } }), (e) => isCorralError(e, 'INVALID_ARGUMENT'), JSON.stringify(pty));
});

for (const b of backends) {
  test(`${b.name}: capabilities say an exec can get a terminal`, { skip: b.skip }, async () => {
    assert.equal((await b.make().probe()).pty, true);
  });

  test(`${b.name}: the command has a real terminal of the requested size, TERM=xterm-256color, only fds 0-2`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const r = await sb.exec(spec(['sh', '-c', 'tty -s && echo is-a-tty; stty size; echo "TERM=$TERM"; ls /proc/self/fd | tr "\\n" " "'], { tty: { cols: 123, rows: 45 } }));
    r.upper?.release();
    assert.equal(r.exitCode, 0, r.stdout.toString());
    const out = r.stdout.toString();
    assert.match(out, /^is-a-tty\r\n45 123\r\nTERM=xterm-256color\r\n/);
    assert.match(out, /\r\n0 1 2 3 $/, 'stdio and ls\'s own directory fd only: no control or status fd leaks in');
    assert.equal(r.stderr.length, 0, 'stderr is merged into the terminal');
  });

  if (b.name === 'namespace')
    test('namespace: the seccomp filter still refuses TIOCSTI on the sandbox\'s own terminal; TIOCSWINSZ works', { skip: b.skip }, async () => {
      const sb = await sandbox(b.make());
      const script = 'my $c = "x"; if (ioctl(STDIN, 0x5412, $c)) { print "injected\\n" } else { print "refused: $!\\n" } my $ws = pack("S4", 20, 10, 0, 0); print ioctl(STDIN, 0x5414, $ws) ? "resized\\n" : "no resize: $!\\n"; system("stty", "size");';
      const r = await sb.exec(spec(['/usr/bin/perl', '-e', script]));
      r.upper?.release();
      assert.match(r.stdout.toString(), /^refused: Operation not permitted\r\nresized\r\n20 10\r\n/);
    });

  test(`${b.name}: an explicit TERM stays; given stdin is typed in and its end is ^D`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const r = await sb.exec(spec(['sh', '-c', 'echo "TERM=$TERM"; cat; echo cat-done'], { env: { ...env, TERM: 'vt100' }, stdin: Buffer.from('hello\n') }));
    r.upper?.release();
    assert.equal(r.exitCode, 0);
    const out = r.stdout.toString();
    assert.match(out, /TERM=vt100/);
    assert.match(out, /cat-done/, '^D ended cat');
    assert.equal(out.split('hello').length - 1, 2, 'the terminal echoes the line, then cat prints it');
  });

  test(`${b.name}: an interactive shell: type, read back, resize, ^C, exit code`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const s = session(sb, ['bash', '--norc', '--noprofile', '-i'], { env: { ...env, PS1: 'PROMPT$ ' }, tty: { cols: 80, rows: 24 } });
    const t = await s.ready;
    await s.waitFor(/PROMPT\$ /);
    t.write('echo hi-$((40+2))\n');
    await s.waitFor(/hi-42\r\n/);
    t.write('stty size\n');
    await s.waitFor(/\b24 80\r\n/);
    t.resize(132, 50);
    assert.deepEqual(t.size, { cols: 132, rows: 50 });
    t.write('stty size\n');
    await s.waitFor(/\b50 132\r\n/);
    assert.throws(() => t.resize(0, 10), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    assert.throws(() => t.resize(80, 1001), (e) => isCorralError(e, 'INVALID_ARGUMENT'));
    // ^C reaches the foreground job through the terminal's line discipline.
    t.write('sleep 100\n');
    while (!tree(s.supervisorPid).some((p) => p.comm === 'sleep')) await sleep(10);
    t.write('\x03');
    await s.waitFor(/PROMPT\$ /);
    t.write('echo "status=$?"\n');
    await s.waitFor(/status=130/);
    t.write('exit 3\n');
    const r = await s.result;
    r.upper?.release();
    assert.equal(r.exitCode, 3);
    assert.equal(r.signal, null);
    assert.equal(s.events.at(-1), 'exit');
    assert.equal(t.closed, true);
    assert.equal(t.write('late'), false, 'input after the end goes nowhere');
  });

  test(`${b.name}: trailing output is all received before the exit event`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const s = session(sb, ['bash', '-c', "printf 'x%.0s' {1..100000}; exit 0"]);
    const r = await s.result;
    r.upper?.release();
    assert.equal(r.exitCode, 0);
    assert.equal(s.out.length, 100000);
    assert.equal(r.stdout.toString(), 'x'.repeat(100000));
    assert.equal(s.events.at(-1), 'exit');
    assert.equal(s.events.indexOf('exit'), s.events.length - 1, 'one exit, after every stdout event');
  });

  test(`${b.name}: a paused reader holds a fast producer back without buffering, and it resumes`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const abort = new AbortController();
    let received = 0;
    let t: TerminalControl | undefined;
    let supervisor = 0;
    const running = sb.exec(
      spec(['yes', 'corral-flow-control'], {
        signal: abort.signal,
        outputCap: 1 << 16,
        onTerminal: (term) => (t = term),
        onEvent: (e) => {
          if (e.type === 'started') supervisor = e.supervisorPid;
          if (e.type === 'stdout') received += e.data.length;
        },
      }),
    );
    while (received < 1 << 20) await sleep(10);
    t!.pause();
    assert.equal(t!.paused, true);
    await sleep(100); // what was in flight lands
    const atPause = received;
    const relays = () => tree(supervisor).filter((p) => p.comm !== 'yes').map((p) => p.pid).concat(supervisor);
    const cpu0 = relays().reduce((n, p) => n + ticks(p), 0);
    await sleep(1000);
    const cpu1 = relays().reduce((n, p) => n + ticks(p), 0);
    assert.equal(received, atPause, 'no output while paused: the producer is blocked, not buffered');
    assert.ok(cpu1 - cpu0 < 30, `the relay sleeps while the reader is paused (${cpu1 - cpu0} ticks in 1 s)`);
    assert.ok(process.memoryUsage().rss < 1024 ** 3, 'memory stays bounded');
    t!.resume();
    while (received < atPause + (1 << 20)) await sleep(10);
    abort.abort();
    const r: RunResult = await running;
    r.upper?.release();
    assert.equal(r.cancelled, true);
    assert.ok(r.stdoutBytes >= atPause + (1 << 20));
    assert.ok(r.stdout.length <= (1 << 16) + 100, 'the kept output is capped');
  });

  test(`${b.name}: a timeout kills the whole tree, even with the reader paused`, { skip: b.skip }, async () => {
    const sb = await sandbox(b.make());
    const marker = `1000.${process.pid}${b.name.length}7`;
    const r = await sb.exec(
      spec(['bash', '-c', `sleep ${marker} & (setsid sleep ${marker} &); yes`], {
        timeoutMs: 700,
        onTerminal: (t) => setTimeout(() => t.pause(), 100),
      }),
    );
    r.upper?.release();
    assert.equal(r.timedOut, true);
    assert.equal(r.exitCode, null);
    assert.ok(r.signal === 'SIGTERM' || r.signal === 'SIGKILL', String(r.signal));
    assert.deepEqual(processesWith(marker), [], 'nothing of the exec is left');
  });
}

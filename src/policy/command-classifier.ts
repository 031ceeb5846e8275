// Turns parsed simple commands into classified parts: looks through wrappers (sudo, env, nice, timeout, xargs,
// find -exec, bash -c, python -c...), resolves the paths they name and consults the program catalog.
import { posix } from 'node:path';
import { classifyInlineCode, gitSubcommand, isDiskDevice, lookupProgram, systemDirs, type Verdict } from './command-catalog.ts';
import { looksLikePath, pathMatches, resolvePath } from './path-globs.ts';
import type { CommandCategory, CommandPart, PathRef, RiskMark } from './policy-types.ts';
import type { ShellParser, ShellWord, SimpleCommand } from './shell-parser.ts';

export interface ClassifyContext {
  cwd: string;
  parser: ShellParser;
  /** Nesting of bash -c / su -c / env -S inside each other. */
  depth: number;
}

/** What surrounds a command: wrappers already looked through and what they add. */
interface Frame {
  wrappers: string[];
  categories: CommandCategory[];
  marks: RiskMark[];
  env: string[];
  redirects: PathRef[];
  stdin: SimpleCommand['stdin'];
  stdinText?: string;
  notes: string[];
  source: string;
}

const MAX_NESTING = 8;

/** Host locations a command must not name (agentvfs's floor), plus ~ in any form. */
export const sensitiveHostGlobs = ['/etc/**', '/home/**', '/var/**', '/Users/**', '/private/**', '/root/**', '/proc/*/root/**', '/proc/*/environ', '/run/**', '/boot/**', '/sys/**', '/dev/mem', '/dev/kmem'];

const harmlessDevices = /^\/dev\/(null|zero|stdin|stdout|stderr|tty|fd\/\d+|u?random|full|ptmx|pts\/\d+)$/;

export function classifyScript(script: string, ctx: ClassifyContext, outer?: Frame): { parts: CommandPart[]; parseError: boolean } {
  const parsed = ctx.parser.parse(script);
  const parts: CommandPart[] = [];
  for (const cmd of parsed.commands) parts.push(...classifySimple(cmd, ctx, outer));
  const base = outer ?? emptyFrame(script);
  for (const issue of parsed.issues) parts.push(buildPart([], '', { ...base, source: script }, { categories: ['unknown'], notes: [issue] }, ctx));
  if (parsed.forkBomb)
    parts.push(buildPart([], ':', { ...base, source: script }, { categories: ['destructive'], marks: ['fork-bomb'], notes: ['a function that calls itself in a pipeline or in the background: a fork bomb'] }, ctx));
  return { parts, parseError: parsed.parseError };
}

export function classifyArgv(argv: string[], ctx: ClassifyContext): CommandPart[] {
  const words = argv.map((text) => ({ text, dynamic: false, substituted: false }));
  return classifyWords(words, emptyFrame(argv.join(' ')), ctx);
}

function emptyFrame(source: string): Frame {
  return { wrappers: [], categories: [], marks: [], env: [], redirects: [], stdin: 'inherit', notes: [], source };
}

function classifySimple(cmd: SimpleCommand, ctx: ClassifyContext, outer?: Frame): CommandPart[] {
  const frame: Frame = outer
    ? { ...outer, categories: [...outer.categories], marks: [...outer.marks], env: [...outer.env, ...cmd.assignments], redirects: [...outer.redirects], notes: [...outer.notes], source: cmd.source }
    : { ...emptyFrame(cmd.source), env: [...cmd.assignments] };
  // A command's own stdin (pipe, heredoc) replaces the outer one; otherwise it inherits bash -c's stdin.
  if (cmd.stdin !== 'inherit' || !outer) {
    frame.stdin = cmd.stdin;
    if (cmd.stdinText !== undefined) frame.stdinText = cmd.stdinText;
    else delete frame.stdinText;
  }
  for (const r of cmd.redirects) {
    if (!r.target) continue;
    const write = r.op.includes('>');
    const ref = resolvePath(r.target.text, r.target.dynamic, ctx.cwd, write);
    frame.redirects.push(ref);
    if (ref.kind === 'host' && isDiskDevice(ref.path)) {
      if (write) frame.categories.push('destructive', 'host_escape_risk');
      if (write) frame.marks.push('disk-wipe');
    } else if (write && !(ref.kind === 'host' && harmlessDevices.test(ref.path))) frame.categories.push('mutating');
  }
  return classifyWords(cmd.words, frame, ctx);
}

interface WrapperSpec {
  valueOpts?: string[];
  positionals?: number;
  adds?: CommandCategory;
  /** Categories when no command follows (`env` prints the environment, `sudo -i` opens a root shell). */
  alone?: CommandCategory[];
  assignments?: boolean;
}

const wrappers: Record<string, WrapperSpec> = {
  sudo: { valueOpts: ['-u', '-g', '-C', '-D', '-h', '-p', '-r', '-t', '-U', '-T', '--user', '--group', '--chdir', '--host', '--prompt', '--role', '--type', '--other-user', '--command-timeout', '--close-from'], adds: 'privilege_escalation', alone: ['privilege_escalation', 'interactive'] },
  doas: { valueOpts: ['-u', '-C'], adds: 'privilege_escalation', alone: ['privilege_escalation', 'interactive'] },
  pkexec: { valueOpts: ['--user'], adds: 'privilege_escalation', alone: ['privilege_escalation', 'interactive'] },
  run0: { valueOpts: ['-u', '--user', '-g', '--group', '-D', '--chdir', '--setenv', '--unit', '--property', '--description', '--slice', '--nice'], adds: 'privilege_escalation', alone: ['privilege_escalation', 'interactive'] },
  env: { valueOpts: ['-u', '--unset', '-C', '--chdir', '-a', '--argv0'], assignments: true, alone: ['read_only'] },
  nice: { valueOpts: ['-n', '--adjustment'], alone: ['read_only'] },
  timeout: { valueOpts: ['-s', '--signal', '-k', '--kill-after'], positionals: 1 },
  nohup: {},
  time: { valueOpts: ['-f', '--format', '-o', '--output'], alone: ['read_only'] },
  command: {},
  builtin: {},
  exec: { valueOpts: ['-a'], alone: ['read_only'] },
  stdbuf: { valueOpts: ['-i', '-o', '-e', '--input', '--output', '--error'] },
  ionice: { valueOpts: ['-c', '-n', '-p', '-P', '-u', '--class', '--classdata'], alone: ['read_only'] },
  setsid: {},
  chrt: { positionals: 1, alone: ['read_only'] },
  taskset: { positionals: 1, alone: ['read_only'] },
  unbuffer: {},
  flock: { valueOpts: ['-w', '--wait', '--timeout', '-E', '--conflict-exit-code'], positionals: 1 },
  strace: { valueOpts: ['-o', '-e', '-p', '-s', '-u', '-E', '-a', '-b', '-I', '-O', '-P', '-S', '-X'] },
  ltrace: { valueOpts: ['-o', '-e', '-p', '-s', '-u', '-a', '-A', '-D', '-n', '-l', '-w'] },
  catchsegv: {},
  faketime: { positionals: 1 },
  torsocks: { adds: 'networked' },
  proxychains: { adds: 'networked' },
  proxychains4: { adds: 'networked' },
  'xvfb-run': { valueOpts: ['-n', '-s', '-f', '-e', '-p', '-w', '--server-args', '--server-num'] },
  watch: { valueOpts: ['-n', '--interval', '-q', '--equexit'], adds: 'interactive', alone: ['interactive'] },
  chroot: { valueOpts: ['--userspec', '--groups'], positionals: 1, adds: 'host_escape_risk', alone: ['host_escape_risk'] },
  busybox: {},
};

const shells = new Set(['bash', 'sh', 'zsh', 'dash', 'ksh', 'ash', 'mksh', 'rbash', 'yash', 'fish', 'tcsh', 'csh', 'pdksh']);
const shellValueOpts = ['-o', '+o', '-O', '+O', '--rcfile', '--init-file'];

interface Interpreter { code: string[]; valueOpts: string[]; module?: string }
const interpreters: { test: RegExp; spec: Interpreter }[] = [
  { test: /^(python[0-9.]*|pypy[0-9.]*)$/, spec: { code: ['-c'], valueOpts: ['-W', '-X', '-Q'], module: '-m' } },
  { test: /^(node|nodejs)$/, spec: { code: ['-e', '--eval', '-p', '--print'], valueOpts: ['-r', '--require', '--import', '--loader', '--experimental-loader', '-C', '--conditions', '--input-type', '--env-file', '--title'] } },
  { test: /^bun$/, spec: { code: ['-e', '--eval', '-p', '--print'], valueOpts: [] } },
  { test: /^perl[0-9.]*$/, spec: { code: ['-e', '-E'], valueOpts: ['-I', '-M', '-m'] } },
  { test: /^(ruby|jruby)$/, spec: { code: ['-e'], valueOpts: ['-I', '-r', '-C'] } },
  { test: /^php[0-9.]*$/, spec: { code: ['-r'], valueOpts: ['-d', '-c'] } },
  { test: /^(lua|luajit|lua5\.[0-9])$/, spec: { code: ['-e'], valueOpts: ['-l'] } },
  { test: /^Rscript$/, spec: { code: ['-e'], valueOpts: [] } },
  { test: /^osascript$/, spec: { code: ['-e'], valueOpts: [] } },
];

const opaque: Record<string, string> = {
  eval: 'eval runs a string built at run time; it cannot be analysed: run the command directly',
  source: 'source runs a script file in this shell; its contents are not analysed',
  '.': '. runs a script file in this shell; its contents are not analysed',
  trap: 'trap registers a command string that runs later; it cannot be analysed',
  alias: 'alias changes what later words mean; it cannot be analysed',
  enable: 'enable can load builtins from shared objects; it cannot be analysed',
  coproc: 'coproc is not analysed',
  fc: 'fc re-runs commands from history; it cannot be analysed',
};

function skipOptions(words: ShellWord[], start: number, valueOpts: string[], env?: string[]): number {
  let j = start;
  while (j < words.length) {
    const a = words[j]!.text;
    if (a === '--') return j + 1;
    if (env && /^[A-Za-z_][A-Za-z0-9_]*=/.test(a)) {
      env.push(a.slice(0, a.indexOf('=')));
      j++;
    } else if (a.startsWith('-') && a !== '-') j += valueOpts.includes(a) ? 2 : 1;
    else return j;
  }
  return j;
}

function classifyWords(words: ShellWord[], frame: Frame, ctx: ClassifyContext): CommandPart[] {
  if (words.length === 0) return [buildPart([], '', frame, { categories: frame.categories.length ? [] : ['read_only'] }, ctx)];
  const first = words[0]!;
  if (first.dynamic)
    return [buildPart(words, first.text, frame, { categories: ['unknown'], notes: ['the program name is computed at run time ($VAR or $(...)); it cannot be analysed: name the program literally'] }, ctx)];
  const name = first.text;
  const program = posix.basename(name);
  const rest = words.slice(1);
  const args = rest.map((w) => w.text);
  if (name.includes('/') && !systemDirs.includes(posix.dirname(posix.normalize(name)))) {
    const ref = resolvePath(name, false, ctx.cwd, false);
    return [buildPart(words, name, frame, { categories: ['mutating'], notes: ['runs a program named by a path; what it does is not analysed'], extraPaths: [{ text: ref.text, write: false }] }, ctx)];
  }

  const opaqueReason = opaque[program];
  if (opaqueReason) return [buildPart(words, program, frame, { categories: ['unknown'], notes: [opaqueReason] }, ctx)];

  const wrap = wrappers[program];
  if (wrap) {
    const inner: Frame = { ...frame, wrappers: [...frame.wrappers, program], categories: [...frame.categories], marks: [...frame.marks], env: [...frame.env] };
    if (wrap.adds) inner.categories.push(wrap.adds);
    if (program === 'env') {
      const split = args.findIndex((a) => a === '-S' || a === '--split-string' || a.startsWith('--split-string=') || (a.startsWith('-S') && a.length > 2));
      if (split >= 0) {
        const a = args[split]!;
        const script = a === '-S' || a === '--split-string' ? rest[split + 1] : { ...rest[split]!, text: a.replace(/^(-S|--split-string=)/, '') };
        return nested(script, { ...inner, wrappers: [...inner.wrappers.slice(0, -1), 'env -S'] }, ctx, words);
      }
    }
    if (program === 'command' && (args[0] === '-v' || args[0] === '-V')) return [buildPart(words, program, frame, { categories: ['read_only'] }, ctx)];
    let j = skipOptions(words, 1, wrap.valueOpts ?? [], wrap.assignments ? inner.env : undefined);
    j += wrap.positionals ?? 0;
    if (j >= words.length) return [buildPart(words, program, frame, { categories: wrap.alone ?? ['unknown'], notes: wrap.alone ? [] : [`${program} without a command`] }, ctx)];
    const parts = classifyWords(words.slice(j), inner, ctx);
    if (program === 'chroot') parts.push(buildPart(words.slice(0, j), program, frame, { categories: ['host_escape_risk'] }, ctx));
    return parts;
  }

  if (program === 'xargs') {
    const inner: Frame = { ...frame, wrappers: [...frame.wrappers, 'xargs'], stdin: 'inherit', notes: [...frame.notes, 'xargs adds arguments read from stdin'] };
    delete inner.stdinText;
    if (args.some((a) => a === '-p' || a === '--interactive')) inner.categories = [...inner.categories, 'interactive'];
    const j = skipOptions(words, 1, ['-a', '-d', '-E', '-I', '-L', '-n', '-P', '-s', '--arg-file', '--delimiter', '--eof', '--replace', '--max-lines', '--max-args', '--max-procs', '--max-chars', '--process-slot-var']);
    if (j >= words.length) return [buildPart(words, 'xargs', frame, { categories: ['read_only'], notes: ['xargs runs echo'] }, ctx)];
    return classifyWords(words.slice(j), inner, ctx);
  }

  if (program === 'su') {
    const c = args.findIndex((a) => a === '-c' || a === '--command');
    const inner: Frame = { ...frame, wrappers: [...frame.wrappers, 'su -c'], categories: [...frame.categories, 'privilege_escalation'] };
    if (c >= 0) return nested(rest[c + 1], inner, ctx, words);
    return [buildPart(words, program, frame, { categories: ['privilege_escalation', 'interactive'] }, ctx)];
  }

  if (program === 'find') {
    const parts: CommandPart[] = [];
    const execAt = args.findIndex((a) => /^-(exec|execdir|ok|okdir)$/.test(a));
    if (execAt >= 0) {
      let end = execAt + 1;
      while (end < args.length && args[end] !== ';' && args[end] !== '+') end++;
      const inner: Frame = { ...frame, wrappers: [...frame.wrappers, `find ${args[execAt]}`], notes: [...frame.notes, 'find adds the found paths as arguments'] };
      if (/^-ok/.test(args[execAt]!)) inner.categories = [...frame.categories, 'interactive'];
      parts.push(...classifyWords(rest.slice(execAt + 1, end), inner, ctx));
      const remaining = [first, ...rest.slice(0, execAt), ...rest.slice(end + 1)];
      parts.push(...classifyWords(remaining, frame, ctx));
      return parts;
    }
  }

  if (shells.has(program)) return shell(words, program, frame, ctx);
  const interp = interpreters.find((i) => i.test.test(program));
  if (interp) return interpreter(words, program, interp.spec, frame, ctx);
  if (program === 'deno') {
    const sub = args.find((a) => !a.startsWith('-'));
    if (sub === 'eval') return [buildPart(words, program, frame, classifyInlineCode(args.slice(args.indexOf('eval') + 1).join(' ')), ctx)];
    const net = args.some((a) => /^(-A|--allow-all|--allow-net)/.test(a));
    return [buildPart(words, program, frame, { categories: sub ? (net ? ['mutating', 'networked'] : ['mutating']) : ['interactive'] }, ctx)];
  }

  const verdict = lookupProgram(program, args);
  if (verdict) return [buildPart(words, program, frame, verdict, ctx)];
  return [buildPart(words, program, frame, { categories: ['mutating'], notes: [`"${program}" is not a known program: treated as able to change files`] }, ctx)];
}

/** bash -c / sh -c / su -c / env -S: analyse the string as a script when it is literal. */
function nested(script: ShellWord | undefined, frame: Frame, ctx: ClassifyContext, words: ShellWord[]): CommandPart[] {
  if (!script) return [buildPart(words, posix.basename(words[0]!.text), frame, { categories: ['unknown'], notes: ['the command string is missing'] }, ctx)];
  if (script.dynamic)
    return [buildPart(words, posix.basename(words[0]!.text), frame, { categories: ['unknown'], notes: ['the command string is computed at run time; it cannot be analysed'] }, ctx)];
  if (ctx.depth >= MAX_NESTING)
    return [buildPart(words, posix.basename(words[0]!.text), frame, { categories: ['unknown'], notes: ['shells are nested too deeply to analyse'] }, ctx)];
  const inner = classifyScript(script.text, { ...ctx, depth: ctx.depth + 1 }, frame);
  return inner.parts.length ? inner.parts : [buildPart(words, posix.basename(words[0]!.text), frame, { categories: ['read_only'] }, ctx)];
}

/** A shell or interpreter reading its program from stdin: analysable from a literal heredoc, opaque from a pipe. */
function fromStdin(words: ShellWord[], program: string, frame: Frame, ctx: ClassifyContext, analyse: (text: string) => CommandPart[]): CommandPart[] {
  if (frame.stdin === 'pipe')
    return [buildPart(words, program, frame, { categories: ['unknown'], marks: ['pipe-to-shell'], notes: [`${program} runs code piped into it; it cannot be analysed: save it to a file and review it first`] }, ctx)];
  if (frame.stdin === 'heredoc' || frame.stdin === 'file') {
    if (frame.stdinText !== undefined) return analyse(frame.stdinText);
    return [buildPart(words, program, frame, { categories: frame.stdin === 'file' ? ['mutating'] : ['unknown'], notes: [`${program} runs a script from stdin that is not analysed`] }, ctx)];
  }
  return [buildPart(words, program, frame, { categories: ['interactive'], notes: [`${program} with no program starts an interactive session`] }, ctx)];
}

function shell(words: ShellWord[], program: string, frame: Frame, ctx: ClassifyContext): CommandPart[] {
  let i = 1;
  let command = false;
  while (i < words.length) {
    const a = words[i]!.text;
    if (a === '--' || a === '-') {
      i++;
      break;
    }
    if (!/^[-+]/.test(a)) break;
    if (shellValueOpts.includes(a)) i += 2;
    else {
      if (/^-[a-zA-Z]*c[a-zA-Z]*$/.test(a)) command = true;
      i++;
    }
  }
  const inner: Frame = { ...frame, wrappers: [...frame.wrappers, `${program} -c`] };
  if (command) return nested(words[i], inner, ctx, words);
  const script = words[i];
  if (script) {
    if (script.substituted || script.dynamic)
      return [buildPart(words, program, frame, { categories: ['unknown'], marks: script.substituted ? ['pipe-to-shell'] : [], notes: ['the script is produced at run time; it cannot be analysed'] }, ctx)];
    return [buildPart(words, program, frame, { categories: ['mutating'], notes: [`runs the script ${script.text}; its contents are not analysed`], writes: 'none' }, ctx)];
  }
  return fromStdin(words, program, frame, ctx, (text) => {
    const stdinFrame: Frame = { ...inner, stdin: 'inherit', wrappers: [...frame.wrappers, `${program} <<`] };
    delete stdinFrame.stdinText;
    return classifyScript(text, { ...ctx, depth: ctx.depth + 1 }, stdinFrame).parts;
  });
}

function interpreter(words: ShellWord[], program: string, spec: Interpreter, frame: Frame, ctx: ClassifyContext): CommandPart[] {
  let i = 1;
  while (i < words.length) {
    const w = words[i]!;
    const a = w.text;
    if (spec.code.includes(a) || spec.code.some((c) => c.length === 2 && a.startsWith(c) && a.length > 2 && !a.startsWith('--'))) {
      const code = spec.code.includes(a) ? words[i + 1] : { ...w, text: a.slice(2) };
      if (!code || code.dynamic)
        return [buildPart(words, program, frame, { categories: ['unknown'], notes: ['the inline code is computed at run time; it cannot be analysed'] }, ctx)];
      return [buildPart(words, program, { ...frame, wrappers: [...frame.wrappers] }, classifyInlineCode(code.text), ctx)];
    }
    if (spec.module && (a === spec.module || (a.startsWith(spec.module) && a.length > 2))) {
      const mod = a === spec.module ? words[i + 1]?.text : a.slice(2);
      const modArgs = words.slice(a === spec.module ? i + 2 : i + 1);
      if (mod === 'pip') return classifyWords([{ text: 'pip', dynamic: false, substituted: false }, ...modArgs], { ...frame, wrappers: [...frame.wrappers, `${program} -m`] }, ctx);
      const cats: CommandCategory[] = mod === 'http.server' || mod === 'SimpleHTTPServer' || mod === 'smtpd' ? ['networked'] : mod === 'json.tool' || mod === 'this' ? ['read_only'] : ['mutating'];
      return [buildPart(words, program, frame, { categories: cats, notes: [`runs the module ${mod ?? '?'}`], writes: 'none' }, ctx)];
    }
    if (a === '--') {
      i++;
      break;
    }
    if (!a.startsWith('-') || a === '-') break;
    i += spec.valueOpts.includes(a) ? 2 : 1;
  }
  const script = words[i];
  if (script && script.text !== '-') {
    if (script.substituted || script.dynamic)
      return [buildPart(words, program, frame, { categories: ['unknown'], marks: script.substituted ? ['pipe-to-shell'] : [], notes: ['the program is produced at run time; it cannot be analysed'] }, ctx)];
    return [buildPart(words, program, frame, { categories: ['mutating'], notes: [`runs ${script.text}; its contents are not analysed`], writes: 'none' }, ctx)];
  }
  if (words.some((w) => w.text === '-i')) return [buildPart(words, program, frame, { categories: ['interactive'] }, ctx)];
  return fromStdin(words, program, frame, ctx, (text) => [buildPart(words, program, frame, classifyInlineCode(text), ctx)]);
}

function splitFlags(args: string[]): string[] {
  const flags: string[] = [];
  for (const a of args) {
    if (a === '--') break;
    if (!a.startsWith('-') || a === '-') continue;
    if (a.startsWith('--')) flags.push(a.includes('=') ? a.slice(0, a.indexOf('=')) : a);
    else {
      flags.push(a);
      if (/^-[a-zA-Z0-9]{2,}$/.test(a)) for (const c of a.slice(1)) flags.push(`-${c}`);
    }
  }
  return [...new Set(flags)];
}

const pathValue = (text: string): string | undefined => {
  const eq = text.indexOf('=');
  if (eq > 0) {
    const value = text.slice(eq + 1);
    if (value.startsWith('/') || value.startsWith('~') || value.startsWith('.')) return value;
  }
  if (/^-[a-zA-Z]\//.test(text)) return text.slice(2);
  if (text.startsWith('file://')) return decodeURIComponent(text.slice(7));
  return looksLikePath(text) && !/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : undefined;
};

function buildPart(words: ShellWord[], program: string, frame: Frame, verdict: Verdict, ctx: ClassifyContext): CommandPart {
  const argv = words.map((w) => w.text);
  const args = argv.slice(1);
  const cats = new Set<CommandCategory>([...frame.categories, ...verdict.categories]);
  const marks = new Set<RiskMark>([...frame.marks, ...(verdict.marks ?? [])]);
  const writes = verdict.writes ?? ((cats.has('mutating') || cats.has('destructive')) && !verdict.categories.includes('read_only') ? 'args' : 'none');
  const operands = words.slice(1).filter((w) => !w.text.startsWith('-'));
  const last = operands.at(-1);
  const paths: PathRef[] = [];
  for (const w of words.slice(1)) {
    if (w.dynamic && !w.text.startsWith('/') && !w.text.startsWith('~')) continue;
    const text = pathValue(w.text);
    if (text === undefined) continue;
    const write = writes === 'args' ? !w.text.startsWith('-') : writes === 'last' && w === last && operands.length > 1;
    paths.push(resolvePath(text, w.dynamic, ctx.cwd, write));
  }
  for (const p of verdict.extraPaths ?? []) paths.push(resolvePath(p.text, false, ctx.cwd, p.write));
  for (const ref of [...paths, ...frame.redirects]) {
    if (ref.kind === 'home' || (ref.kind === 'host' && sensitiveHostGlobs.some((g) => pathMatches(g, ref)))) {
      marks.add('host-path');
      cats.add('host_escape_risk');
    }
    if (ref.kind === 'host' && !ref.text.startsWith('/') && !ref.text.startsWith('~')) {
      marks.add('leaves-workspace');
      cats.add('host_escape_risk');
    }
  }
  if (cats.size > 1) cats.delete('read_only');
  if (cats.size === 0) cats.add('read_only');
  const env = [...new Set(frame.env)];
  const part: CommandPart = {
    argv,
    program,
    wrappers: frame.wrappers,
    categories: [...cats].sort(),
    flags: splitFlags(args),
    paths,
    redirects: frame.redirects,
    marks: [...marks].sort(),
    env,
    source: frame.source,
    notes: [...frame.notes, ...(verdict.notes ?? [])],
  };
  const sub = program === 'git' ? gitSubcommand(args).sub : args.find((a) => !a.startsWith('-'));
  if (sub !== undefined) part.subcommand = sub;
  return part;
}

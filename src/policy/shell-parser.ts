// A real bash parser (tree-sitter-bash through web-tree-sitter) reduced to what the policy needs:
// every simple command that would run, wherever it hides (pipelines, lists, subshells, substitutions,
// heredoc pipelines, function and if/for/while/case bodies), with its words, redirections and stdin.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Language, Parser, type Node } from 'web-tree-sitter';

/** A word after quote removal. `dynamic` when its value depends on expansions (other than $HOME, shown as ~). */
export interface ShellWord {
  text: string;
  dynamic: boolean;
  /** Holds a command or process substitution (its commands are listed separately). */
  substituted: boolean;
}

export interface ShellRedirect {
  /** '>', '>>', '<', '&>', '>&', '<<<', '<<'... */
  op: string;
  /** The file named; undefined for fd duplications (2>&1) and heredocs. */
  target?: ShellWord;
}

export interface SimpleCommand {
  words: ShellWord[];
  /** Prefix assignments (NAME=value cmd) and, for export/declare/local, the names they set. */
  assignments: string[];
  redirects: ShellRedirect[];
  /** Where stdin comes from when the command itself does not redirect it. */
  stdin: 'inherit' | 'pipe' | 'heredoc' | 'file';
  /** Static text of a heredoc or here-string fed to the command (so `bash <<EOF` can be analysed). */
  stdinText?: string;
  source: string;
}

export interface ParsedScript {
  commands: SimpleCommand[];
  /** Things that could not be analysed: parse errors, nesting too deep, input too long. */
  issues: string[];
  forkBomb: boolean;
  parseError: boolean;
}

export interface ShellParser {
  parse(script: string): ParsedScript;
  /** Milliseconds the first load took (wasm compile + grammar), for benchmarks. */
  readonly loadMs: number;
}

const MAX_SCRIPT = 1 << 20;
const MAX_DEPTH = 200;

// The wasm runtime is process-global in web-tree-sitter; loading it once per process is the cache of an
// immutable resource, not mutable state.
let loading: Promise<ShellParser> | undefined;

/** Loads the bash grammar once (about 15 ms); parsing is synchronous afterwards. */
export function loadShellParser(): Promise<ShellParser> {
  loading ??= load();
  return loading;
}

async function load(): Promise<ShellParser> {
  const started = performance.now();
  const require = createRequire(import.meta.url);
  await Parser.init();
  const wasm = join(dirname(require.resolve('tree-sitter-bash/package.json')), 'tree-sitter-bash.wasm');
  const language = await Language.load(wasm);
  const parser = new Parser();
  parser.setLanguage(language);
  const loadMs = performance.now() - started;
  return {
    loadMs,
    parse(script: string): ParsedScript {
      if (script.length > MAX_SCRIPT) return { commands: [], issues: ['the script is longer than 1 MiB'], forkBomb: false, parseError: true };
      const tree = parser.parse(script);
      if (!tree) return { commands: [], issues: ['the parser gave no result'], forkBomb: false, parseError: true };
      try {
        return new Walker().run(tree.rootNode);
      } finally {
        tree.delete();
      }
    },
  };
}

interface Context {
  redirects: ShellRedirect[];
  stdin: SimpleCommand['stdin'];
  stdinText?: string;
  /** Source of an enclosing redirected statement, so `echo x > f` is shown whole. */
  source?: string;
}

const fresh: Context = { redirects: [], stdin: 'inherit' };

class Walker {
  commands: SimpleCommand[] = [];
  issues: string[] = [];
  forkBomb = false;
  functions = new Set<string>();

  run(root: Node): ParsedScript {
    this.collectFunctions(root, 0);
    this.walk(root, fresh, 0);
    const parseError = root.hasError;
    if (parseError) this.issues.unshift('the command does not parse as bash');
    return { commands: this.commands, issues: this.issues, forkBomb: this.forkBomb, parseError };
  }

  collectFunctions(node: Node, depth: number): void {
    if (depth > MAX_DEPTH) return;
    if (node.type === 'function_definition') {
      const name = node.childForFieldName('name')?.text;
      const body = node.childForFieldName('body');
      if (name && body) {
        this.functions.add(name);
        const calls = countCalls(body, name, 0);
        if (calls.count >= 2 || (calls.count >= 1 && calls.forks)) this.forkBomb = true;
      }
    }
    for (const child of node.namedChildren) if (child) this.collectFunctions(child, depth + 1);
  }

  walk(node: Node, ctx: Context, depth: number): void {
    if (depth > MAX_DEPTH) {
      if (!this.issues.includes('the command is nested too deeply to analyse')) this.issues.push('the command is nested too deeply to analyse');
      return;
    }
    switch (node.type) {
      case 'command':
        this.command(node, ctx, depth);
        return;
      case 'declaration_command':
        this.declaration(node, ctx, depth);
        return;
      case 'redirected_statement':
        this.redirected(node, ctx, depth);
        return;
      case 'pipeline': {
        let stage = 0;
        for (const child of node.children) {
          if (!child) continue;
          if (child.type === '|' || child.type === '|&') stage++;
          else if (child.isNamed) this.walk(child, stage > 0 ? { ...ctx, stdin: 'pipe', stdinText: undefined } : ctx, depth + 1);
        }
        return;
      }
      case 'function_definition': {
        const body = node.childForFieldName('body');
        if (body) this.walk(body, fresh, depth + 1);
        return;
      }
      case 'command_substitution':
      case 'process_substitution':
        for (const child of node.namedChildren) if (child) this.walk(child, fresh, depth + 1);
        return;
      case 'heredoc_redirect':
        // The rest of a pipeline that starts with a heredoc (`cat <<EOF | sh`) hangs under the redirect.
        for (const child of node.namedChildren) {
          if (!child) continue;
          if (child.type === 'pipeline' || isStatement(child.type)) this.walk(child, { ...fresh, stdin: 'pipe' }, depth + 1);
          else this.walk(child, fresh, depth + 1);
        }
        return;
      default:
        for (const child of node.namedChildren) if (child) this.walk(child, ctx, depth + 1);
    }
  }

  /** Walks the substitutions inside a word-like node (they run before the command). */
  substitutions(node: Node, depth: number): void {
    if (node.type === 'command_substitution' || node.type === 'process_substitution') {
      this.walk(node, fresh, depth + 1);
      return;
    }
    for (const child of node.namedChildren) if (child) this.substitutions(child, depth + 1);
  }

  redirected(node: Node, ctx: Context, depth: number): void {
    const own: ShellRedirect[] = [];
    let stdin = ctx.stdin;
    let stdinText = ctx.stdinText;
    let body: Node | null = null;
    for (let i = 0; i < node.childCount; i++) {
      const child = node.child(i);
      if (!child || !child.isNamed) continue;
      const field = node.fieldNameForChild(i);
      if (field === 'body') body = child;
      else if (field === 'redirect' || child.type.endsWith('_redirect')) {
        const r = this.redirect(child, depth);
        if (r.redirect) own.push(r.redirect);
        if (r.stdin) {
          stdin = r.stdin;
          stdinText = r.stdinText;
        }
      } else this.walk(child, fresh, depth + 1);
    }
    const inner: Context = { redirects: [...ctx.redirects, ...own], stdin, ...(stdinText !== undefined ? { stdinText } : {}), ...(body?.type === 'command' ? { source: node.text } : {}) };
    if (body) this.walk(body, inner, depth + 1);
    else this.commands.push({ words: [], assignments: [], redirects: inner.redirects, stdin: inner.stdin, source: node.text });
  }

  redirect(node: Node, depth: number): { redirect?: ShellRedirect; stdin?: SimpleCommand['stdin']; stdinText?: string } {
    if (node.type === 'heredoc_redirect') {
      this.walk(node, fresh, depth + 1);
      const body = node.namedChildren.find((c) => c?.type === 'heredoc_body');
      const dynamic = body ? body.namedChildren.some((c) => c && c.type !== 'heredoc_content') : false;
      return { redirect: { op: '<<' }, stdin: 'heredoc', ...(body && !dynamic ? { stdinText: body.text } : {}) };
    }
    if (node.type === 'herestring_redirect') {
      const arg = node.namedChildren.find((c) => c !== null);
      if (arg) this.substitutions(arg, depth);
      const word = arg ? wordOf(arg) : undefined;
      return { redirect: { op: '<<<' }, stdin: 'heredoc', ...(word && !word.dynamic ? { stdinText: word.text } : {}) };
    }
    // file_redirect: [descriptor] operator destination
    let op = '';
    let dest: Node | null = node.childForFieldName('destination');
    for (const child of node.children) if (child && !child.isNamed) op += child.type;
    if (!dest) dest = node.namedChildren.filter((c) => c && c.type !== 'file_descriptor').at(-1) ?? null;
    if (dest) this.substitutions(dest, depth);
    const target = dest ? wordOf(dest) : undefined;
    const dup = (op === '>&' || op === '<&' || op === '>&-' || op === '<&-') && target !== undefined && /^(\d+-?|-)$/.test(target.text);
    const redirect: ShellRedirect = { op, ...(target && !dup ? { target } : {}) };
    const readsFile = (op === '<' || op === '<>') && !dup;
    return { redirect, ...(readsFile ? { stdin: 'file' as const } : {}) };
  }

  command(node: Node, ctx: Context, depth: number): void {
    const words: ShellWord[] = [];
    const assignments: string[] = [];
    const redirects = [...ctx.redirects];
    let stdin = ctx.stdin;
    let stdinText = ctx.stdinText;
    for (let i = 0; i < node.childCount; i++) {
      const child = node.child(i);
      if (!child || !child.isNamed) continue;
      const field = node.fieldNameForChild(i);
      if (child.type === 'variable_assignment') {
        const name = child.childForFieldName('name')?.text;
        if (name) assignments.push(name);
        this.substitutions(child, depth);
      } else if (field === 'redirect' || child.type.endsWith('_redirect')) {
        const r = this.redirect(child, depth);
        if (r.redirect) redirects.push(r.redirect);
        if (r.stdin) {
          stdin = r.stdin;
          stdinText = r.stdinText;
        }
      } else if (field === 'name' || field === 'argument' || child.type === 'command_name') {
        const target = child.type === 'command_name' ? (child.namedChildren[0] ?? child) : child;
        this.substitutions(target, depth);
        words.push(wordOf(target));
      } else this.substitutions(child, depth);
    }
    // Calls to functions defined in the script: their bodies are walked where they are defined.
    if (words[0] && !words[0].dynamic && this.functions.has(words[0].text)) return;
    this.commands.push({ words, assignments, redirects, stdin, ...(stdinText !== undefined ? { stdinText } : {}), source: ctx.source ?? node.text });
  }

  declaration(node: Node, ctx: Context, depth: number): void {
    const words: ShellWord[] = [];
    const assignments: string[] = [];
    for (const child of node.children) {
      if (!child) continue;
      if (!child.isNamed) {
        words.push({ text: child.type, dynamic: false, substituted: false });
        continue;
      }
      this.substitutions(child, depth);
      if (child.type === 'variable_assignment') {
        const name = child.childForFieldName('name')?.text;
        if (name) assignments.push(name);
        words.push({ text: child.text, dynamic: true, substituted: false });
      } else words.push(wordOf(child));
    }
    this.commands.push({ words, assignments, redirects: [...ctx.redirects], stdin: ctx.stdin, source: node.text });
  }
}

function isStatement(type: string): boolean {
  return ['command', 'list', 'subshell', 'compound_statement', 'redirected_statement', 'if_statement', 'while_statement',
    'for_statement', 'c_style_for_statement', 'case_statement', 'negated_command', 'declaration_command', 'function_definition'].includes(type);
}

function countCalls(node: Node, name: string, depth: number): { count: number; forks: boolean } {
  let count = 0;
  let forks = false;
  const visit = (n: Node, d: number, inPipe: boolean): void => {
    if (d > MAX_DEPTH) return;
    if (n.type === 'command' && n.childForFieldName('name')?.text === name) {
      count++;
      if (inPipe) forks = true;
    }
    const pipe = inPipe || n.type === 'pipeline';
    for (const c of n.children) {
      if (!c) continue;
      if (c.type === '&') forks = true;
      visit(c, d + 1, pipe);
    }
  };
  visit(node, depth, false);
  return { count, forks };
}

/** The value of a word-like node after quote removal, with $HOME and ${HOME} shown as ~. */
export function wordOf(node: Node): ShellWord {
  switch (node.type) {
    case 'word':
      return { text: node.text.replace(/\\(.)/gs, '$1').replace(/\\\n/g, ''), dynamic: false, substituted: false };
    case 'number':
    case 'test_operator':
      return { text: node.text, dynamic: false, substituted: false };
    case 'raw_string':
      return { text: node.text.slice(1, -1), dynamic: false, substituted: false };
    case 'ansi_c_string':
      return { text: decodeAnsiC(node.text.slice(2, -1)), dynamic: false, substituted: false };
    case 'simple_expansion':
    case 'expansion': {
      const inner = node.type === 'expansion' ? node.text.slice(2, -1) : node.text.slice(1);
      if (inner === 'HOME') return { text: '~', dynamic: false, substituted: false };
      return { text: node.text, dynamic: true, substituted: false };
    }
    case 'command_substitution':
    case 'process_substitution':
      return { text: node.text, dynamic: true, substituted: true };
    case 'string':
    case 'translated_string':
    case 'concatenation': {
      let text = '';
      let dynamic = false;
      let substituted = false;
      for (const child of node.children) {
        if (!child) continue;
        if (!child.isNamed) {
          if (node.type === 'concatenation') text += child.text;
          continue;
        }
        if (child.type === 'string_content') {
          text += child.text.replace(/\\([$`"\\\n])/g, (_m, c: string) => (c === '\n' ? '' : c));
          continue;
        }
        const part = wordOf(child);
        text += part.text;
        dynamic ||= part.dynamic;
        substituted ||= part.substituted;
      }
      return { text, dynamic, substituted };
    }
    default:
      return { text: node.text, dynamic: true, substituted: false };
  }
}

function decodeAnsiC(s: string): string {
  const simple: Record<string, string> = { n: '\n', t: '\t', r: '\r', a: '\x07', b: '\b', e: '\x1b', E: '\x1b', f: '\f', v: '\v', '\\': '\\', "'": "'", '"': '"', '?': '?' };
  return s.replace(/\\(x[0-9a-fA-F]{1,2}|u[0-9a-fA-F]{1,4}|U[0-9a-fA-F]{1,8}|[0-7]{1,3}|c.|.)/gs, (m, e: string) => {
    if (e[0] === 'x' || e[0] === 'u' || e[0] === 'U') return String.fromCodePoint(parseInt(e.slice(1), 16));
    if (/^[0-7]/.test(e)) return String.fromCharCode(parseInt(e, 8) & 0xff);
    if (e[0] === 'c') return String.fromCharCode((e.charCodeAt(1) ?? 64) & 0x1f);
    return simple[e] ?? m;
  });
}

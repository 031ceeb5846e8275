// How the CLI speaks: data on stdout (human text, or one JSON document with --json), progress and
// diagnostics on stderr, colour and spinners only on a TTY and never with --json.
import pc from 'picocolors';
import { CorralError, errorCodes } from '../protocol/errors.ts';

export type Colors = ReturnType<typeof pc.createColors>;

export interface Progress {
  /** Moves the counter to `done` (of `total`, when known). */
  update(done: number, total?: number): void;
  stop(): void;
}

export class Output {
  readonly json: boolean;
  readonly c: Colors;
  private readonly stdout: NodeJS.WriteStream;
  private readonly stderr: NodeJS.WriteStream;

  constructor(json: boolean, stdout: NodeJS.WriteStream = process.stdout, stderr: NodeJS.WriteStream = process.stderr) {
    this.json = json;
    this.stdout = stdout;
    this.stderr = stderr;
    this.c = pc.createColors(!json && stdout.isTTY === true && !process.env.NO_COLOR);
  }

  /** Prints a command's result: `data` as JSON, or the text `human` makes from it. */
  result<T>(data: T, human: (data: T, c: Colors) => string | string[] | undefined): void {
    if (this.json) {
      this.stdout.write(JSON.stringify(data, null, 2) + '\n');
      return;
    }
    const text = human(data, this.c);
    if (text === undefined) return;
    const lines = Array.isArray(text) ? text.join('\n') : text;
    if (lines.length > 0) this.stdout.write(lines.endsWith('\n') ? lines : lines + '\n');
  }

  /** Raw bytes to stdout (cat, export --tar -). */
  bytes(data: Uint8Array): void {
    this.stdout.write(data);
  }

  /** A diagnostic line on stderr; silent with --json. */
  note(message: string): void {
    if (!this.json) this.stderr.write(escapeControls(message) + '\n');
  }

  error(err: CorralError): number {
    if (this.json) this.stdout.write(JSON.stringify(err.toEnvelope(), null, 2) + '\n');
    else {
      const c = pc.createColors(this.stderr.isTTY === true && !process.env.NO_COLOR);
      this.stderr.write(`${c.red('error')} ${c.dim(`[${err.code}]`)} ${escapeControls(err.message)}\n`);
    }
    return errorCodes[err.code].exit;
  }

  /**
   * A progress line on stderr for long work: it appears only after half a second, only on a
   * TTY, never with --json, and is erased when the work ends.
   */
  progress(label: string): Progress {
    const enabled = !this.json && this.stderr.isTTY === true;
    const started = Date.now();
    let done = 0;
    let total: number | undefined;
    let frame = 0;
    let shown = false;
    let lastDraw = 0;
    const frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
    const draw = (): void => {
      if (!enabled || Date.now() - started < 500) return;
      shown = true;
      lastDraw = Date.now();
      const pct = total ? ` ${Math.floor((done / total) * 100)}%` : '';
      this.stderr.write(`\r\x1b[2K${frames[frame++ % frames.length]} ${label} ${done}${total ? `/${total}` : ''}${pct}`);
    };
    const timer = enabled ? setInterval(draw, 100) : undefined;
    timer?.unref();
    return {
      update: (d, t) => {
        done = d;
        total = t ?? total;
        // Synchronous work starves the timer, so updates draw too (at most every 100 ms).
        if (enabled && Date.now() - lastDraw >= 100) draw();
      },
      stop: () => {
        if (timer) clearInterval(timer);
        if (shown) this.stderr.write('\r\x1b[2K');
      },
    };
  }
}

/** The `Examples:` block of a command's --help. */
export function examples(...commands: string[]): string {
  return '\nExamples:\n' + commands.map((c) => `  $ ${c}`).join('\n');
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function formatTime(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export function formatMode(kind: string, mode: number): string {
  const bits = 'rwxrwxrwx';
  let s = kind === 'dir' ? 'd' : kind === 'symlink' ? 'l' : '-';
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : '-';
  return s;
}

/**
 * Text from a vault (a path, a link target, a commit message) made safe to print on a terminal:
 * C0 and C1 control characters and DEL become visible escapes such as \x1b, so a crafted name
 * cannot recolour, move the cursor, retitle or otherwise drive the terminal. Human output only:
 * --json prints every name exactly.
 */
export function escapeControls(text: string): string {
  // Backslashes are doubled so a literal '\x1b' in a name cannot pass for an escaped ESC; bidi
  // controls are escaped too, as they reorder what a terminal shows.
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) =>
    c === '\\' ? '\\\\' : c.charCodeAt(0) > 0xff ? `\\u${c.charCodeAt(0).toString(16)}` : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

export function shortId(id: string): string {
  return id.slice(0, 12);
}

/** Pads columns of a table of strings (no colour codes inside cells). */
export function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '));
}

// The handle on a running exec's pseudo-terminal: typing into it, resizing it, ending its input,
// and pausing its output. The terminal itself is made by the supervisor (native/corral-run.c
// --pty); this side only holds the pipes to it: the supervisor's stdin (input), its stdout (the
// terminal's output) and a control pipe that carries `resize COLS ROWS` lines.
import type { Readable, Writable } from 'node:stream';
import { CorralError } from '../protocol/errors.ts';
import { terminalSizeProblem, type TerminalSize } from '../protocol/terminal-size.ts';

export interface TerminalControl {
  /**
   * Types `data` into the terminal (strings as UTF-8): what a keyboard would send, so "\r" or "\n"
   * ends a line and "\x03" is ^C. Returns false when the input pipe is full (the command does not
   * read): further writes are buffered by Node until it drains, so a sender should slow down.
   * After end() or once the exec is over, it does nothing and returns false.
   */
  write(data: Uint8Array | string): boolean;
  /** Sets the terminal's size (1..1000 each; INVALID_ARGUMENT otherwise): the command gets SIGWINCH. */
  resize(cols: number, rows: number): void;
  /** No more input: the supervisor types the terminal's EOF character (^D) once, as a person would. */
  end(): void;
  /**
   * Stops reading the terminal's output. The pipes fill, the supervisor stops reading the terminal,
   * and the command blocks on its next write: nothing piles up in memory. A daemon pauses above a
   * high watermark of unacknowledged output and resumes below a low one. The exec's end waits
   * for its last output to be read, so a paused terminal must be resumed (a timeout or a cancel
   * resumes it: the rest then flows).
   */
  pause(): void;
  /** Reads the output again. */
  resume(): void;
  readonly paused: boolean;
  /** The size last set. */
  readonly size: TerminalSize;
  /** Whether the exec is over (then every call above does nothing). */
  readonly closed: boolean;
}

/** Throws INVALID_ARGUMENT unless cols × rows is a terminal size. */
export function checkTerminalSize(size: unknown): TerminalSize {
  const problem = terminalSizeProblem(size);
  if (problem) throw new CorralError('INVALID_ARGUMENT', problem, {});
  const { cols, rows } = size as TerminalSize;
  return { cols, rows };
}

/** A TerminalControl over the supervisor's pipes. */
export class PipeTerminal implements TerminalControl {
  private readonly input: Writable;
  private readonly control: Writable;
  private readonly output: Readable;
  private current: TerminalSize;
  private isPaused = false;
  private isClosed = false;

  constructor(pipes: { input: Writable; control: Writable; output: Readable }, size: TerminalSize) {
    this.input = pipes.input;
    this.control = pipes.control;
    this.output = pipes.output;
    this.current = { ...size };
  }

  get paused(): boolean {
    return this.isPaused;
  }

  get size(): TerminalSize {
    return { ...this.current };
  }

  get closed(): boolean {
    return this.isClosed;
  }

  write(data: Uint8Array | string): boolean {
    if (this.isClosed || this.input.writableEnded || this.input.destroyed) return false;
    return this.input.write(typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
  }

  resize(cols: number, rows: number): void {
    const size = checkTerminalSize({ cols, rows });
    this.current = size;
    if (this.isClosed || this.control.destroyed) return;
    this.control.write(`resize ${size.cols} ${size.rows}\n`);
  }

  end(): void {
    if (this.isClosed || this.input.writableEnded || this.input.destroyed) return;
    this.input.end();
  }

  pause(): void {
    if (this.isClosed || this.isPaused) return;
    this.isPaused = true;
    this.output.pause();
  }

  resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    this.output.resume();
  }

  /** The exec is over: output flows again (to the end of the pipe), and input and resizes stop. */
  close(): void {
    this.resume();
    this.isClosed = true;
  }
}

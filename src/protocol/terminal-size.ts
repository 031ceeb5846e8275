// The size of an exec's pseudo-terminal (`tty: {cols, rows}`), and the bounds every layer checks.
// Pure: shared by the runtime, the services, the API schemas and the SDK.

export interface TerminalSize {
  /** Columns, 1..TERMINAL_MAX. */
  cols: number;
  /** Rows, 1..TERMINAL_MAX. */
  rows: number;
}

/** The largest number of columns or rows: far beyond any screen, small enough that nothing sizes a buffer by it by accident. */
export const TERMINAL_MAX = 1000;

/** Why `size` is not a terminal size (undefined when it is one): a message that says what to send instead. */
export function terminalSizeProblem(size: unknown): string | undefined {
  if (typeof size !== 'object' || size === null || Array.isArray(size)) return `tty must be an object {cols, rows}, got ${size === null ? 'null' : Array.isArray(size) ? 'an array' : typeof size}`;
  const { cols, rows } = size as Record<string, unknown>;
  for (const [name, v] of [['cols', cols], ['rows', rows]] as const)
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= TERMINAL_MAX))
      return `tty.${name} must be a whole number from 1 to ${TERMINAL_MAX}, got ${typeof v === 'number' ? v : typeof v === 'string' ? JSON.stringify(v.slice(0, 20)) : typeof v}`;
  const extra = Object.keys(size).filter((k) => k !== 'cols' && k !== 'rows');
  if (extra.length > 0) return `tty takes only cols and rows, not ${extra.slice(0, 3).map((k) => k.slice(0, 20)).join(', ')}`;
  return undefined;
}

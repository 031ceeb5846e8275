// What every CLI command gets: the opened Corral (lazily, so `--help` touches no database), the
// output, the selected vault, and the helpers for reading input.
import { userInfo } from 'node:os';
import { Command } from 'commander';
import { Corral } from '../services/corral.ts';
import { CorralError, toCorralError } from '../protocol/errors.ts';
import { MAX_ENTRY_BYTES } from '../runtime/transfer-limits.ts';
import { Output } from './output.ts';

export interface GlobalOptions {
  vault?: string;
  json?: boolean;
}

export class CliContext {
  private opened: Corral | undefined;
  out: Output = new Output(false);
  globals: GlobalOptions = {};
  exitCode = 0;

  get corral(): Corral {
    if (!this.opened) {
      let actor = 'unknown';
      try {
        actor = userInfo().username;
      } catch {
        // No passwd entry for this uid (containers): the uid is still a name.
        actor = `uid:${process.getuid?.() ?? '?'}`;
      }
      this.opened = new Corral({ caller: { actor: `cli:${actor}`, origin: 'cli' } });
    }
    return this.opened;
  }

  /** The vault this command works on: --vault, $CORRAL_VAULT, or the one chosen with `vault use`. */
  vault(): string {
    return this.corral.vaults.current(this.globals.vault);
  }

  close(): void {
    this.opened?.close();
    this.opened = undefined;
  }

  /** Wraps a command's action: global options, errors turned into the envelope and an exit code. */
  action<A extends unknown[]>(fn: (...args: A) => void | Promise<void>): (...args: unknown[]) => Promise<void> {
    return async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      this.globals = cmd.optsWithGlobals() as GlobalOptions;
      this.out = new Output(this.globals.json === true);
      try {
        await fn(...(args as A));
      } catch (e) {
        this.exitCode = this.out.error(toCorralError(e));
      }
    };
  }
}

/**
 * Reads all of stdin (or `input`), at most `limit` bytes: reading stops, with PAYLOAD_TOO_LARGE,
 * as soon as more arrive, so a huge stream never fills the memory. `what` names it in the message.
 */
export async function readStdin(
  limit = MAX_ENTRY_BYTES,
  what = 'the file',
  input: AsyncIterable<Uint8Array | string> = process.stdin,
  tooLarge?: (total: number) => CorralError,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of input) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += bytes.length;
    if (total > limit) throw tooLarge?.(total) ?? new CorralError('PAYLOAD_TOO_LARGE', `${what} on stdin is more than ${limit} bytes, over the limit (nothing was changed)`, { limit });
    chunks.push(bytes);
  }
  return Buffer.concat(chunks);
}

export { parseSize } from '../protocol/units.ts';

export function parseCount(text: string, what: string): number {
  if (!/^\d{1,15}$/.test(text.trim())) throw new CorralError('INVALID_ARGUMENT', `${what} must be a whole number, got '${text}'`, { [what]: text });
  return Number(text);
}

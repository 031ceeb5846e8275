// The exec result envelope (`corral.exec.result`, version 1): what `corral exec --json` prints and
// what the API returns. camelCase, versioned, the same shape whether the command ran or not.

export type ExecStatus = 'completed' | 'pending' | 'denied' | 'failed';

export type ExecStage = 'validating' | 'resolving' | 'policy' | 'baseline' | 'checkpointing' | 'mounting' | 'executing' | 'summarizing' | 'cleaning_up';

export interface ExecDecision {
  action: 'allow' | 'deny' | 'require_approval' | 'allow_with_checkpoint';
  categories: string[];
  reason: string;
  rule: string;
}

export interface PathChange {
  path: string;
  size: number;
  kind?: 'file' | 'dir' | 'symlink';
}

export interface ExecChanges {
  commit: string | null;
  added: PathChange[];
  modified: PathChange[];
  deleted: PathChange[];
  /** Why the changes were not committed, when they were not: readonly, failed, timedOut, cancelled, conflict. */
  discarded?: string;
  /** With discarded 'conflict': the paths the vault changed meanwhile that this command changed too. */
  conflicts?: string[];
  /** Entries the vault cannot hold (fifos, sockets, devices), left out. */
  skipped?: { path: string; reason: string }[];
}

export interface ExecResult {
  kind: 'corral.exec.result';
  version: 1;
  id: string;
  command: { argv: string[]; shell: string | null; cwd: string };
  vault: string;
  backend: string | null;
  decision: ExecDecision | null;
  checkpoint: string | null;
  status: ExecStatus;
  /** Set when status is pending: the approval to answer, then `corral exec --resume ID`. */
  approval?: { id: string; expiresAt: string };
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  oomKilled: boolean;
  truncated: boolean;
  /** With tty: the terminal's output (stderr merged into it, as in any terminal), and stderr is empty. */
  stdout: string;
  stderr: string;
  /** Present (true) when the command ran on a pseudo-terminal. */
  tty?: boolean;
  /** 'utf8' unless the output was not valid UTF-8, then 'base64'. */
  encoding: 'utf8' | 'base64';
  durationMs: number;
  stages: Partial<Record<ExecStage, number>>;
  usage: { peakMemoryBytes: number | null; cpuMs: number; cpuUserMs: number; cpuSystemMs: number; readBytes: number | null; writtenBytes: number | null };
  changes: ExecChanges | null;
  /** The limits the exec ran under (requested, from the policy, or Corral's defaults where the backend enforces them). */
  limits?: { memoryBytes?: number; pids?: number; cpuPercent?: number; openFiles?: number; fileSizeBytes?: number; tmpSizeBytes?: number; timeoutMs?: number };
  warnings: string[];
  /** When status is failed (or the command did not start): why, with a code from the error registry. */
  error?: { code: string; message: string; details: Record<string, unknown> };
}

/** The process exit code of `corral exec`: the command's own when it ran (124 on timeout, as timeout(1)), 125 when it did not. */
export function execExitCode(r: ExecResult): number {
  if (r.status !== 'completed') return 125;
  if (r.timedOut) return 124;
  if (r.exitCode !== null) return r.exitCode;
  if (r.signal) return 128 + (signalNumbers[r.signal] ?? 9);
  return 125;
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10, SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15 };

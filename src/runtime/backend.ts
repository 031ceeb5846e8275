// The one interface every isolation technology implements (host, namespace; later oci, vm, remote),
// and the registry that picks one by name or by capability.
import { CorralError } from '../protocol/errors.ts';
import type { TerminalSize } from '../protocol/terminal-size.ts';
import type { ExecEvent, OutputHold, StdinSource } from './supervisor.ts';
import type { TerminalControl } from './terminal-control.ts';

export type BackendName = 'host' | 'namespace';
export const backendNames: readonly BackendName[] = ['host', 'namespace'];

export interface Capabilities {
  backend: BackendName;
  available: boolean;
  /** Why not, when unavailable, with the command that fixes it. */
  reason?: string;
  isolation: { filesystem: boolean; network: boolean; process: boolean; syscalls: boolean; user: boolean };
  limits: { memory: boolean; pids: boolean; cpu: boolean; wallTime: boolean; openFiles: boolean; fileSize: boolean; tmpSize: boolean };
  /** How the workspace's changes are caught: an overlay upper dir, or a stat index of the checkout. */
  changeDetection: 'overlay' | 'stat-index';
  snapshots: boolean;
  /** Whether an exec can get a pseudo-terminal (ExecSpec.tty); absent means no. */
  pty?: boolean;
  profiles: string[];
  notes: string[];
}

export interface ResourceLimits {
  memoryBytes?: number;
  pids?: number;
  /** 100 = one core. */
  cpuPercent?: number;
  openFiles?: number;
  fileSizeBytes?: number;
  tmpSizeBytes?: number;
}

export interface SandboxSpec {
  /** The vault's warm checkout on the host. */
  checkout: string;
  readonly: boolean;
  network: boolean;
  limits: ResourceLimits;
  /** Run even where a requested limit cannot be enforced (reported in the result's warnings). */
  bestEffort: boolean;
}

export interface ExecSpec {
  argv: string[];
  /** Inside the workspace: a vault path such as '/' or '/src'. */
  cwd: string;
  env: Record<string, string>;
  stdin?: StdinSource;
  /** A pseudo-terminal of this size as the command's stdin, stdout and stderr (output arrives as stdout). */
  tty?: TerminalSize;
  /** With tty: called once the command runs, with the handle to type into, resize and pause the terminal. */
  onTerminal?: (t: TerminalControl) => void;
  /** Without a terminal: a hold on the output pipes, at start (see OutputHold). */
  onOutput?: (hold: OutputHold) => void;
  /** Run as this user inside the sandbox (namespace backend: the uid/gid the user namespace shows; default: the sandbox's own). */
  user?: { uid: number; gid: number };
  timeoutMs: number;
  graceMs: number;
  outputCap: number;
  heartbeatMs?: number;
  limits: ResourceLimits;
  onEvent?: (e: ExecEvent) => void;
  signal?: AbortSignal;
}

export interface ExecUsage {
  peakMemoryBytes: number | null;
  cpuUserMs: number;
  cpuSystemMs: number;
  cpuMs: number;
  wallMs: number;
  readBytes: number | null;
  writtenBytes: number | null;
}

export interface RunResult {
  exitCode: number | null;
  signal: string | null;
  timedOut: boolean;
  cancelled: boolean;
  oomKilled: boolean;
  stdout: Buffer;
  stderr: Buffer;
  stdoutBytes: number;
  stderrBytes: number;
  truncated: boolean;
  durationMs: number;
  usage: ExecUsage;
  /** What the command changed: an overlay upper directory (release it once read), or nothing: the checkout itself changed. */
  upper?: { dir: string; opaque: string[]; release(): void };
  warnings: string[];
  /** Milliseconds spent mounting (sandbox set-up) vs running. */
  stages: { mounting: number; executing: number };
}

export interface Sandbox {
  readonly id: string;
  readonly backend: BackendName;
  readonly spec: SandboxSpec;
  exec(spec: ExecSpec): Promise<RunResult>;
  /** Stop (SIGSTOP) and continue every process of the sandbox. */
  suspend(): void;
  resume(): void;
  /** Kill everything and release the sandbox's resources (temp dirs, cgroups). Idempotent. */
  destroy(): Promise<void>;
  /** CPU and memory of the processes running now. */
  usage(): { processes: number; cpuMs: number; rssBytes: number };
}

export interface Backend {
  readonly name: BackendName;
  probe(): Promise<Capabilities>;
  health(): Promise<{ ok: boolean; warnings: string[] }>;
  create(spec: SandboxSpec): Promise<Sandbox>;
}

export class BackendRegistry {
  private readonly backends = new Map<BackendName, Backend>();

  register(b: Backend): this {
    this.backends.set(b.name, b);
    return this;
  }

  /** A backend by name, or `auto`: the most isolated available one. */
  async select(name: BackendName | 'auto'): Promise<{ backend: Backend; capabilities: Capabilities }> {
    if (name !== 'auto') {
      const b = this.backends.get(name);
      if (!b) throw new CorralError('INVALID_ARGUMENT', `unknown backend "${name}": use one of ${[...this.backends.keys()].join(', ')} or auto`, { backend: name });
      const capabilities = await b.probe();
      if (!capabilities.available) throw new CorralError('BACKEND_UNAVAILABLE', `the ${name} backend is unavailable here: ${capabilities.reason ?? 'see corral doctor'}`, { backend: name });
      return { backend: b, capabilities };
    }
    const order: BackendName[] = ['namespace', 'host'];
    for (const n of order) {
      const b = this.backends.get(n);
      if (!b) continue;
      const capabilities = await b.probe();
      if (capabilities.available) return { backend: b, capabilities };
    }
    throw new CorralError('BACKEND_UNAVAILABLE', 'no backend is available on this machine: run `corral doctor`', {});
  }

  async probeAll(): Promise<Capabilities[]> {
    return Promise.all([...this.backends.values()].map((b) => b.probe()));
  }
}

/** Which requested limits a backend's capabilities cannot enforce. */
export function unenforceable(caps: Capabilities, limits: ResourceLimits): string[] {
  const missing: string[] = [];
  if (limits.memoryBytes !== undefined && !caps.limits.memory) missing.push('memory');
  if (limits.pids !== undefined && !caps.limits.pids) missing.push('pids');
  if (limits.cpuPercent !== undefined && !caps.limits.cpu) missing.push('cpu');
  if (limits.openFiles !== undefined && !caps.limits.openFiles) missing.push('openFiles');
  if (limits.fileSizeBytes !== undefined && !caps.limits.fileSize) missing.push('fileSize');
  if (limits.tmpSizeBytes !== undefined && !caps.limits.tmpSize) missing.push('tmpSize');
  return missing;
}

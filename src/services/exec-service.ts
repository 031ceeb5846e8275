// The proxy pipeline: validate → resolve → policy → baseline → checkpoint → mount → execute →
// summarize, as an explicit state machine. A command is understood by the policy before it runs,
// runs isolated against the vault's warm checkout, and what it changed becomes exactly one commit
// (or is discarded) with an exact change summary. Resources are released on every path.
import { totalmem } from 'node:os';
import { CorralError, isCorralError, toCorralError } from '../protocol/errors.ts';
import type { ExecChanges, ExecDecision, ExecResult, PathChange } from '../protocol/exec-result.ts';
import { normalizePath } from '../protocol/paths.ts';
import { newId } from '../protocol/ids.ts';
import type { Caller, Commit, CorralStore } from '../store/corral-store.ts';
import { TreeReader } from '../store/tree-reader.ts';
import { loadPolicy, evaluate } from '../policy/policy-engine.ts';
import type { Decision, PolicyLimits } from '../policy/policy-types.ts';
import { BackendRegistry, type BackendName, type ResourceLimits, type RunResult } from '../runtime/backend.ts';
import { HostBackend } from '../runtime/host-backend.ts';
import { NamespaceBackend } from '../runtime/namespace-backend.ts';
import { cleanupStaleResources } from '../runtime/supervised-sandbox.ts';
import type { ExecEvent, OutputHold, StdinSource } from '../runtime/supervisor.ts';
import type { TerminalControl } from '../runtime/terminal-control.ts';
import { resolveSandboxUser } from '../runtime/sandbox-user.ts';
import { terminalSizeProblem, type TerminalSize } from '../protocol/terminal-size.ts';
import { readUpperChanges } from '../runtime/overlay-changes.ts';
import type { FsChangeSet } from '../runtime/fs-changes.ts';
import type { ApprovalService } from './approval-service.ts';
import type { CheckoutService, FileChange, WarmCheckout } from './checkout-service.ts';
import type { CheckpointService } from './checkpoint-service.ts';
import type { ServiceDeps } from './corral.ts';
import { ExecStateMachine } from './exec-state.ts';
import { VaultLocks, type ExclusiveLease, type SharedLease } from './vault-locks.ts';

export const DEFAULT_TIMEOUT_MS = 300_000;
export const DEFAULT_GRACE_MS = 2_000;
export const DEFAULT_OUTPUT_CAP = 10 * 1024 * 1024;
export const DEFAULT_HEARTBEAT_MS = 5_000;
/** Default pids limit where cgroups allow one (a build's parallel compilers fit; a fork bomb does not). */
export const DEFAULT_PIDS_LIMIT = 4096;
/** How long an overlay exec waits for a warm checkout another exec holds at an older commit before it makes its own. */
const PINNED_MS = 200;

/** Default memory limit where cgroups allow one: 4 GiB, or half the machine's memory when that is less. */
export function defaultMemoryLimit(): number {
  return Math.min(4 * 1024 ** 3, Math.floor(totalmem() / 2));
}

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface ExecRequest {
  /** The exec's id when the caller made it already (an exec_ id; default: a new one). */
  id?: string;
  vault: string;
  /** Exactly one of argv (no shell) and shell (run as `bash -c`, never a login shell). */
  argv?: string[];
  shell?: string;
  /** Inside the workspace: relative, or absolute under /workspace. Default: the workspace root. */
  cwd?: string;
  /** Variables to add to the clean environment (PATH, HOME, TERM, LANG are set by Corral). */
  env?: Record<string, string>;
  /** With tty: typed into the terminal first; its end types ^D (see TerminalControl.end). */
  stdin?: StdinSource;
  /**
   * A real pseudo-terminal of this size (1..1000 each) as the command's stdin, stdout and stderr,
   * with TERM=xterm-256color unless env sets TERM. The result's stdout holds what the terminal
   * showed (capped as usual) and stderr is empty.
   */
  tty?: TerminalSize;
  /** Run as this user inside the sandbox: "UID", "UID:GID" or a name of /etc/passwd (namespace backend; default: the sandbox's own user). */
  user?: string;
  /** With tty: called once the command runs, with the handle to type into, resize, end and pause the terminal. */
  onTerminal?: (t: TerminalControl) => void;
  /** Without tty: called once the command runs, with a hold on its output (a reader that falls behind pauses it). */
  onOutput?: (hold: OutputHold) => void;
  backend?: BackendName | 'auto';
  /** A preset name or a policy file (default: workstation). */
  policy?: string;
  timeoutMs?: number;
  graceMs?: number;
  /** Run with the workspace read-only (namespace) or discard every write (host). */
  readonly?: boolean;
  network?: boolean;
  limits?: ResourceLimits;
  /** Run even where a requested limit cannot be enforced (reported as a warning). */
  bestEffort?: boolean;
  /** `auto` (default): take a checkpoint when the policy says allow_with_checkpoint; `never`: don't. */
  checkpoint?: 'auto' | 'never';
  /** What to do with the changes of a command that failed or timed out (default keep). */
  onFailure?: 'keep' | 'discard';
  outputCap?: number;
  heartbeatMs?: number;
  /** require_approval: wait this long for a person's answer (default: don't wait, return pending). */
  approvalWaitMs?: number;
  /** Run the command an approved approval holds. */
  resume?: string;
  onEvent?: (e: ExecEvent) => void;
  signal?: AbortSignal;
}

/** What an approval keeps of a request, to run it later. */
type StoredRequest = Omit<ExecRequest, 'id' | 'stdin' | 'onEvent' | 'onTerminal' | 'onOutput' | 'signal' | 'resume' | 'approvalWaitMs' | 'heartbeatMs'>;

const storedKeys = ['vault', 'argv', 'shell', 'cwd', 'env', 'tty', 'user', 'backend', 'policy', 'timeoutMs', 'graceMs', 'readonly', 'network', 'limits', 'bestEffort', 'checkpoint', 'onFailure', 'outputCap'] as const satisfies readonly (keyof StoredRequest)[];

/** The request's plain fields only: never a stream, a signal or a callback. */
function storedRequest(req: StoredRequest): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of storedKeys) if (req[k] !== undefined) out[k] = req[k];
  return out;
}

export function quoteArgv(argv: readonly string[]): string {
  return argv.map((a) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replaceAll("'", `'\\''`)}'`)).join(' ');
}

/** A cwd given relative to the workspace or absolute under /workspace, as a vault path. */
export function workspaceCwd(cwd: string | undefined): string {
  if (cwd === undefined || cwd === '' || cwd === '.') return '/';
  if (typeof cwd !== 'string') throw new CorralError('INVALID_ARGUMENT', 'cwd must be a string');
  let rel = cwd;
  if (cwd.startsWith('/')) {
    if (cwd !== '/workspace' && !cwd.startsWith('/workspace/'))
      throw new CorralError('INVALID_PATH', `the working directory must be inside the workspace: a relative path or one under /workspace, got '${cwd}'`, { cwd });
    rel = cwd.slice('/workspace'.length);
  }
  try {
    return normalizePath(rel);
  } catch (e) {
    throw new CorralError('INVALID_PATH', `the working directory escapes the workspace: '${cwd}'`, { cwd }, e);
  }
}

function strictest(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

function toPathChanges(changes: FileChange[], kind: FileChange['change']): PathChange[] {
  return changes.filter((c) => c.change === kind).map((c) => ({ path: c.path, size: c.size, kind: c.kind }));
}

function decodeOutput(stdout: Buffer, stderr: Buffer): { stdout: string; stderr: string; encoding: 'utf8' | 'base64' } {
  const dec = new TextDecoder('utf-8', { fatal: true });
  try {
    return { stdout: dec.decode(stdout), stderr: dec.decode(stderr), encoding: 'utf8' };
  } catch {
    return { stdout: stdout.toString('base64'), stderr: stderr.toString('base64'), encoding: 'base64' };
  }
}

export interface ExecServiceDeps extends ServiceDeps {
  checkouts: CheckoutService;
  checkpoints: CheckpointService;
  approvals: ApprovalService;
  backends?: BackendRegistry;
}

export class ExecService {
  private readonly store: CorralStore;
  private readonly caller: Caller;
  private readonly checkouts: CheckoutService;
  private readonly checkpoints: CheckpointService;
  private readonly approvals: ApprovalService;
  readonly backends: BackendRegistry;
  /** The warm checkouts' locks (across processes): shared by running overlay execs, exclusive to sync or commit. */
  private readonly locks: VaultLocks;
  private cleaned = false;

  constructor(deps: ExecServiceDeps) {
    this.store = deps.store;
    this.caller = deps.caller;
    this.checkouts = deps.checkouts;
    this.checkpoints = deps.checkpoints;
    this.approvals = deps.approvals;
    this.locks = new VaultLocks(deps.store);
    this.backends = deps.backends ?? new BackendRegistry().register(new HostBackend()).register(new NamespaceBackend());
  }

  /** Runs one command through the whole pipeline. Never throws for the command's own failure: the result says. */
  async run(request: ExecRequest): Promise<ExecResult> {
    const sm = new ExecStateMachine();
    const id = request.id ?? newId('exec');
    const result: ExecResult = {
      kind: 'corral.exec.result',
      version: 1,
      id,
      command: { argv: request.argv ?? [], shell: request.shell ?? null, cwd: '/workspace' },
      vault: request.vault,
      backend: null,
      decision: null,
      checkpoint: null,
      status: 'failed',
      exitCode: null,
      signal: null,
      timedOut: false,
      oomKilled: false,
      truncated: false,
      stdout: '',
      stderr: '',
      encoding: 'utf8',
      durationMs: 0,
      stages: sm.stages,
      usage: { peakMemoryBytes: null, cpuMs: 0, cpuUserMs: 0, cpuSystemMs: 0, readBytes: null, writtenBytes: null },
      changes: null,
      warnings: [],
    };
    let run: RunResult | undefined;
    const releases: (() => void)[] = [];
    /** A host exec's checkout (and its lease) while its writes are not yet committed or put back. */
    let inPlace: { id: number; base: string; lease: ExclusiveLease } | undefined;
    try {
      // validating
      sm.to('validating');
      if (!this.cleaned) {
        this.cleaned = true;
        try {
          cleanupStaleResources();
        } catch (e) {
          result.warnings.push(`could not clean up after an earlier run: ${(e as Error).message}`);
        }
      }
      let req: StoredRequest = request;
      if (request.resume !== undefined) {
        const stored = this.approvals.get(request.resume);
        if (request.vault !== '' && stored.vault !== request.vault)
          throw new CorralError('INVALID_ARGUMENT', `approval ${stored.id} is for vault '${stored.vault}', not '${request.vault}': resume it without --vault or with --vault ${stored.vault}`, { approval: stored.id, vault: stored.vault });
        req = this.approvals.consume(request.resume).request as StoredRequest;
        result.vault = req.vault;
      }
      const argv = this.validate(req);
      const user = req.user === undefined ? undefined : resolveSandboxUser(req.user);
      const cwd = workspaceCwd(req.cwd);
      result.command = { argv: req.argv ?? [], shell: req.shell ?? null, cwd: cwd === '/' ? '/workspace' : `/workspace${cwd}` };
      const commandText = req.shell ?? quoteArgv(argv);

      // resolving
      sm.to('resolving');
      const vault = this.store.getVault(req.vault);
      // The workspace root is always a directory: only a cwd below it is looked up.
      if (cwd !== '/') {
        const at = new TreeReader(this.store.objects, this.store.headTree(vault.name)).mustLstat(cwd);
        if (at.kind !== 'dir') throw new CorralError('NOT_A_DIRECTORY', `the working directory ${result.command.cwd} is not a directory in '${vault.name}'`, { cwd: result.command.cwd });
      }
      const policy = await loadPolicy(req.policy ?? 'workstation');
      const { backend, capabilities } = await this.backends.select(req.backend ?? 'auto');
      result.backend = backend.name;
      if (req.tty && !capabilities.pty)
        throw new CorralError('BACKEND_UNAVAILABLE', `the ${backend.name} backend cannot give a command a terminal here: run it without tty, or pick another backend (corral doctor)`, { backend: backend.name });

      // policy
      sm.to('policy');
      const decision: Decision = request.resume !== undefined ? { ...(this.approvals.get(request.resume).decision as unknown as Decision) } : evaluate(policy, { argv: req.argv, shell: req.shell, cwd, env: req.env ?? {}, network: req.network, readonly: req.readonly });
      result.decision = { action: decision.action, categories: [...decision.categories], reason: decision.reason, rule: decision.rule } satisfies ExecDecision;
      if (decision.action === 'deny') {
        result.status = 'denied';
        this.audit(result, commandText);
        sm.to('completed');
        return this.finish(result, sm);
      }
      if (decision.action === 'require_approval' && request.resume === undefined) {
        const approval = this.approvals.create(vault.name, commandText, storedRequest(req), { ...decision });
        const answered = request.approvalWaitMs ? await this.approvals.waitFor(approval.id, request.approvalWaitMs, request.signal) : approval;
        if (answered.state === 'approved') {
          this.approvals.consume(approval.id);
        } else {
          result.status = answered.state === 'pending' ? 'pending' : 'denied';
          result.approval = { id: approval.id, expiresAt: new Date(approval.expiresAt).toISOString() };
          if (answered.state === 'denied') result.decision = { ...result.decision, action: 'deny', reason: `a person denied it${answered.answerReason ? `: ${answered.answerReason}` : ''}`, rule: 'approval' };
          this.audit(result, commandText);
          sm.to('completed');
          return this.finish(result, sm);
        }
      }
      const readonly = Boolean(req.readonly || decision.constraints?.readonly);
      // Network only when the caller asks for it and the policy allows it; a command that needs it is told.
      const network = Boolean(req.network) && decision.constraints?.network !== false;
      if (!network && decision.categories.includes('networked'))
        result.warnings.push(req.network ? 'this command uses the network, which the policy keeps off' : 'this command uses the network, which is off: ask for it with --network (the policy must allow it)');
      if ((req.backend ?? 'auto') === 'auto' && backend.name === 'host')
        result.warnings.push('auto picked the host backend: the command is not isolated (corral doctor says why the namespace backend is unavailable)');
      const limits = this.mergeLimits(req.limits ?? {}, decision.limits);
      // Where the backend can enforce them, every exec gets memory and pids limits by default: a fork
      // bomb or a runaway writer (the overlay's upper directory is tmpfs, charged to the exec's
      // memory) must not take the host down just because nobody asked for a limit.
      if (limits.memoryBytes === undefined && capabilities.limits.memory) limits.memoryBytes = defaultMemoryLimit();
      if (limits.pids === undefined && capabilities.limits.pids) limits.pids = DEFAULT_PIDS_LIMIT;
      result.limits = { ...limits };
      const timeoutMs = strictest(req.timeoutMs ?? DEFAULT_TIMEOUT_MS, decision.limits?.timeoutMs) ?? DEFAULT_TIMEOUT_MS;
      result.limits.timeoutMs = timeoutMs;

      // baseline: the warm checkout at the head, held alone while it is synced
      sm.to('baseline');
      const overlay = capabilities.changeDetection === 'overlay';
      // Dirty: syncing, committing and host execs write into the checkout in place; if this process
      // dies meanwhile, the next holder is told (recovered) and rescans the checkout before trusting it.
      const lockKey = `warm:${vault.id}`;
      const checkpointing = decision.action === 'allow_with_checkpoint' && (req.checkpoint ?? 'auto') === 'auto' && !readonly;
      // Overlay execs only read the checkout (their lower layer): when it is at the head already,
      // a shared lease is enough and the exec runs beside others without waiting for them to end.
      let fast: { warm: WarmCheckout; shared: SharedLease } | undefined;
      let early: ExclusiveLease | null = null;
      // Until the checkout is at the head (then share it) or nobody holds it (then sync it alone):
      // a checkout another exec made meanwhile is shared at once, not waited for.
      // A checkout held at an older commit for longer than PINNED_MS (a long-running exec reads it)
      // is not waited for: this exec runs on a throwaway checkout of the head instead.
      let pinned: (WarmCheckout & { release: () => void }) | undefined;
      // A fresh fork has no checkout of its own: its source's, at the same commit, serves as the
      // lower layer (read only) until the fork's head moves, so its first exec exports nothing.
      let borrowed = false;
      const lender = overlay && !checkpointing ? this.checkouts.borrowableWarm(vault.name) : undefined;
      if (lender) {
        const shared = await this.locks.shared(`warm:${lender.ownerVaultId}`, request.signal);
        if (this.checkouts.isAt(lender.id, vault.head)) {
          fast = { warm: lender, shared };
          borrowed = true;
        } else shared();
      }
      const since = performance.now();
      for (let wait = 2; overlay && !checkpointing && !fast && !early && !pinned; wait = Math.min(50, wait * 2)) {
        const shared = await this.locks.shared(lockKey, request.signal);
        const current = this.checkouts.currentWarm(vault.name);
        if (current) fast = { warm: current, shared };
        else {
          shared();
          early = await this.locks.tryExclusive(lockKey, { dirty: true });
          if (!early && performance.now() - since > PINNED_MS) pinned = this.checkouts.privateCheckout(vault.name);
          else if (!early) await new Promise((r) => setTimeout(r, wait));
          request.signal?.throwIfAborted();
        }
      }
      let warm: WarmCheckout;
      // The lease also lives as long as the exec's supervisor: it may outlive this process for a moment.
      let attach: (pid: number) => void = () => {};
      let exclusive: ExclusiveLease | undefined;
      if (fast) {
        releases.push(fast.shared);
        warm = fast.warm;
        attach = fast.shared.attach;
      } else if (pinned) {
        releases.push(pinned.release);
        warm = pinned;
      } else {
        const lease = early ?? (await this.locks.exclusive(lockKey, { dirty: true }));
        exclusive = lease;
        releases.push(() => lease.release());
        warm = this.checkouts.warm(vault.name, { rescan: lease.recovered });
        if (lease.recovered) {
          lease.recoveredDone();
          result.warnings.push('an earlier exec died while it held the vault\'s checkout: the checkout was checked and put back to the head first');
        }
        attach = lease.attach;
        if (checkpointing) {
          sm.to('checkpointing');
          result.checkpoint = this.checkpoints.save(vault.name, undefined, `before: ${commandText.slice(0, 200)}`).name;
        }
        if (overlay) {
          const shared = lease.downgrade();
          releases.push(shared);
          attach = shared.attach;
        }
      }

      // mounting + executing (the backend times its own set-up)
      sm.to('mounting');
      const sandbox = await backend.create({ checkout: warm.dir, readonly: readonly && overlay, network, limits, bestEffort: Boolean(req.bestEffort) });
      sm.to('executing');
      const home = backend.name === 'namespace' ? '/workspace' : warm.dir;
      if (!overlay) inPlace = { id: warm.id, base: warm.base, lease: exclusive! };
      run = await sandbox.exec({
        argv,
        cwd,
        env: { PATH: DEFAULT_PATH, HOME: home, TERM: !req.tty && process.env.TERM && process.env.TERM !== 'dumb' ? process.env.TERM : 'xterm-256color', LANG: 'C.UTF-8', SHLVL: '1', CORRAL_VAULT: vault.name, ...req.env },
        // A resumed command runs without input: what was approved is the command, not whatever stdin brings now.
        stdin: request.resume === undefined ? request.stdin : undefined,
        ...(req.tty ? { tty: { cols: req.tty.cols, rows: req.tty.rows }, onTerminal: request.onTerminal } : request.onOutput ? { onOutput: request.onOutput } : {}),
        ...(user ? { user } : {}),
        timeoutMs,
        graceMs: req.graceMs ?? DEFAULT_GRACE_MS,
        outputCap: req.outputCap ?? DEFAULT_OUTPUT_CAP,
        heartbeatMs: request.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
        limits: {},
        onEvent: (e) => {
          if (e.type === 'started') attach(e.supervisorPid);
          request.onEvent?.(e);
        },
        signal: request.signal,
      });
      sm.shift('executing', 'mounting', run.stages.mounting);
      Object.assign(result, {
        exitCode: run.exitCode,
        signal: run.signal,
        timedOut: run.timedOut,
        oomKilled: run.oomKilled,
        truncated: run.truncated,
        ...decodeOutput(run.stdout, run.stderr),
        ...(req.tty ? { tty: true } : {}),
        usage: { peakMemoryBytes: run.usage.peakMemoryBytes, cpuMs: round(run.usage.cpuMs), cpuUserMs: round(run.usage.cpuUserMs), cpuSystemMs: round(run.usage.cpuSystemMs), readBytes: run.usage.readBytes, writtenBytes: run.usage.writtenBytes },
      });
      result.warnings.push(...run.warnings);

      // summarizing: an overlay exec commits from its upper dir under its shared lease (the store's
      // transaction orders commits; the base check catches conflicts), then brings the checkout to
      // the new head only if nobody else reads it now: a long-running exec must not block this one.
      sm.to('summarizing');
      const failed = run.timedOut || run.cancelled || run.exitCode !== 0;
      const discard = readonly ? 'readonly' : run.cancelled ? 'cancelled' : failed && req.onFailure === 'discard' ? (run.timedOut ? 'timedOut' : 'failed') : undefined;
      result.changes = this.summarize(vault.name, warm, run, discard, overlay, { execId: id, command: commandText });
      inPlace = undefined;
      if (overlay && result.changes.commit && !pinned && !borrowed) {
        releases.pop()!();
        const alone = await this.locks.tryExclusive(lockKey, { dirty: true });
        if (alone) {
          releases.push(alone.release);
          // Still at the base this exec ran on (nobody synced meanwhile): write only this commit's changes.
          if (this.checkouts.currentWarm(vault.name) === undefined) this.checkouts.warm(vault.name);
        }
      }
      if (result.changes.conflicts) result.warnings.push(`not committed: the vault changed meanwhile at ${result.changes.conflicts.slice(0, 5).join(', ')}${result.changes.conflicts.length > 5 ? '…' : ''}; run the command again`);
      result.status = 'completed';
      this.audit(result, commandText);
      sm.to('completed');
      return this.finish(result, sm);
    } catch (e) {
      const err = toCorralError(e);
      sm.to('cleaning_up');
      sm.to('failed');
      result.status = 'failed';
      result.error = { code: err.code, message: err.message, details: err.details };
      // A host exec that failed half-way wrote into the checkout: put it back before the lock goes,
      // so the next exec does not commit those writes as its own.
      // Processes that escaped a killed supervisor may still write: the next exec rescans first too.
      if (inPlace) {
        try {
          this.checkouts.syncTo(inPlace.id, inPlace.base);
        } catch (e2) {
          result.warnings.push(`could not put the checkout back after the failure: ${(e2 as Error).message}`);
        }
        inPlace.lease.release({ leaveDirty: true });
      }
      try {
        this.audit(result, result.command.shell ?? quoteArgv(result.command.argv));
      } catch {
        // the failure is what the caller needs; a failed audit append changes nothing
      }
      return this.finish(result, sm);
    } finally {
      run?.upper?.release();
      for (const release of releases.reverse()) release();
    }
  }

  /** The same pipeline as an async iterator of output events, ending with the result. */
  async *stream(request: Omit<ExecRequest, 'onEvent'>): AsyncGenerator<ExecEvent | { type: 'result'; result: ExecResult }> {
    const queue: (ExecEvent | { type: 'result'; result: ExecResult })[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const push = (e: ExecEvent | { type: 'result'; result: ExecResult }): void => {
      queue.push(e);
      wake?.();
    };
    const running = this.run({ ...request, onEvent: push }).then((result) => {
      push({ type: 'result', result });
      done = true;
    });
    for (;;) {
      while (queue.length > 0) {
        const e = queue.shift()!;
        yield e;
        if (e.type === 'result') {
          await running;
          return;
        }
      }
      if (done && queue.length === 0) return;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
  }

  private validate(req: StoredRequest): string[] {
    const hasArgv = req.argv !== undefined;
    const hasShell = req.shell !== undefined;
    if (hasArgv === hasShell) throw new CorralError('INVALID_ARGUMENT', 'give exactly one of a command (argv) or a shell string', {});
    if (hasShell && (typeof req.shell !== 'string' || req.shell.trim() === '')) throw new CorralError('INVALID_ARGUMENT', 'the shell string is empty', {});
    if (hasArgv && (!Array.isArray(req.argv) || req.argv.length === 0 || req.argv.some((a) => typeof a !== 'string')))
      throw new CorralError('INVALID_ARGUMENT', 'argv must be a non-empty list of strings', {});
    const argv = hasShell ? ['bash', '-c', req.shell!] : req.argv!;
    if (argv.some((a) => a.includes('\0'))) throw new CorralError('INVALID_ARGUMENT', 'the command holds a NUL byte', {});
    if (argv.reduce((n, a) => n + a.length, 0) > 1024 * 1024) throw new CorralError('INVALID_ARGUMENT', 'the command is longer than 1 MiB', {});
    if (req.tty !== undefined) {
      const problem = terminalSizeProblem(req.tty);
      if (problem) throw new CorralError('INVALID_ARGUMENT', problem, {});
    }
    for (const [k, v] of Object.entries(req.env ?? {})) {
      if (!ENV_NAME.test(k)) throw new CorralError('INVALID_ARGUMENT', `'${k.slice(0, 60)}' is not a valid environment variable name (letters, digits, '_')`, { name: k.slice(0, 60) });
      if (typeof v !== 'string' || v.includes('\0')) throw new CorralError('INVALID_ARGUMENT', `the value of ${k} must be a string without NUL bytes`, { name: k });
    }
    for (const [name, v, min] of [['timeout', req.timeoutMs, 1], ['grace', req.graceMs, 0], ['output cap', req.outputCap, 0]] as const)
      if (v !== undefined && !(Number.isSafeInteger(v) && v >= min)) throw new CorralError('INVALID_ARGUMENT', `${name} must be a whole number of ${name === 'output cap' ? 'bytes' : 'ms'}, at least ${min}, got ${v}`, { [name]: v });
    return argv;
  }

  private mergeLimits(requested: ResourceLimits, fromPolicy: PolicyLimits | undefined): ResourceLimits {
    const out: ResourceLimits = { ...requested };
    out.memoryBytes = strictest(requested.memoryBytes, fromPolicy?.memoryBytes);
    out.pids = strictest(requested.pids, fromPolicy?.pids);
    for (const k of Object.keys(out) as (keyof ResourceLimits)[]) if (out[k] === undefined) delete out[k];
    for (const [k, v] of Object.entries(out))
      if (!(Number.isSafeInteger(v) && v > 0)) throw new CorralError('INVALID_ARGUMENT', `the ${k} limit must be a positive whole number, got ${v}`, { limit: k });
    return out;
  }

  /** Turns what the command did into one commit (or discards it) and brings the warm checkout to the result. Call holding the vault's lock alone. */
  private summarize(vault: string, warm: { id: number; dir: string; base: string }, run: RunResult, discard: string | undefined, overlay: boolean, details: Record<string, unknown>): ExecChanges {
    // A read-only overlay-backend exec had the checkout mounted read-only: nothing to look at.
    if (discard === 'readonly' && overlay) return { commit: null, added: [], modified: [], deleted: [], discarded: discard };
    const set: FsChangeSet = run.upper ? readUpperChanges(run.upper.dir, warm.dir, new Set(run.upper.opaque)) : this.checkouts.scan(warm.id);
    const skipped = set.skipped.length > 0 ? { skipped: set.skipped } : {};
    if (set.changes.length === 0 && discard === undefined) return { commit: null, added: [], modified: [], deleted: [], ...skipped };
    if (discard !== undefined) {
      // Host execs wrote into the checkout itself: put it back. Overlay execs only wrote to the upper.
      if (!run.upper) this.checkouts.syncTo(warm.id, warm.base);
      return { commit: null, added: [], modified: [], deleted: [], discarded: discard, ...skipped };
    }
    let committed: { commit: Commit | null; changes: FileChange[] };
    try {
      committed = this.checkouts.commitChanges(vault, set, { message: `exec: ${String(details.command).slice(0, 200)}`, op: 'exec.commit', origin: 'exec', details }, { base: warm.base });
    } catch (e) {
      // The vault changed the same paths meanwhile (another exec, an API write): theirs stay.
      if (!isCorralError(e, 'CONFLICT') || !Array.isArray(e.details.paths)) throw e;
      if (!run.upper) this.checkouts.syncTo(warm.id, warm.base);
      return { commit: null, added: [], modified: [], deleted: [], discarded: 'conflict', conflicts: e.details.paths as string[], ...skipped };
    }
    const { commit, changes } = committed;
    // A host exec's directory already holds the changes: the scan refreshes its index. An overlay
    // exec's caller brings the checkout forward when it can have it alone.
    if (commit && !run.upper) this.checkouts.syncTo(warm.id, commit.id, { scan: true });
    return { commit: commit?.id ?? null, added: toPathChanges(changes, 'added'), modified: toPathChanges(changes, 'modified'), deleted: toPathChanges(changes, 'deleted'), ...skipped };
  }

  private audit(result: ExecResult, command: string): void {
    const details = {
      exec: result.id,
      backend: result.backend,
      decision: result.decision && { action: result.decision.action, rule: result.decision.rule, categories: result.decision.categories },
      status: result.status,
      exitCode: result.exitCode,
      signal: result.signal,
      timedOut: result.timedOut,
      checkpoint: result.checkpoint,
      approval: result.approval?.id ?? null,
      commit: result.changes?.commit ?? null,
    };
    const vault = this.store.findVault(result.vault) ? result.vault : null;
    if (result.error) {
      this.store.audit.append({ actor: this.caller.actor, vault, op: 'exec', target: command.slice(0, 1000), details: { origin: this.caller.origin, ...details, message: result.error.message }, result: `error:${result.error.code}` });
      return;
    }
    this.store.write(this.caller, vault, { op: 'exec', target: command.slice(0, 1000), details }, () => undefined);
  }

  private finish(result: ExecResult, sm: ExecStateMachine): ExecResult {
    sm.finish();
    result.durationMs = sm.elapsedMs();
    return result;
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}

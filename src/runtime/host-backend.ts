// The `host` backend: no isolation, the workstation mode of agentd. The command runs in the
// vault's warm checkout as the caller; policy is the only guard. Limits come from cgroups when
// this process may create them, rlimits otherwise; the capabilities say so plainly.
import { join } from 'node:path';
import type { Backend, Capabilities, ExecSpec, Sandbox, SandboxSpec } from './backend.ts';
import { detectCgroups, type CgroupLayout } from './cgroups.ts';
import { SupervisedSandbox, type Launch } from './supervised-sandbox.ts';
import { supervisorAvailable, supervisorPath } from './supervisor.ts';

export function cgroupLimits(layout: CgroupLayout | null): { memory: boolean; pids: boolean; cpu: boolean } {
  const c = (name: 'memory' | 'pids' | 'cpu'): boolean => Boolean(layout?.controllers[name]?.writable);
  return { memory: c('memory'), pids: c('pids'), cpu: c('cpu') };
}

class HostSandbox extends SupervisedSandbox {
  readonly backend = 'host' as const;
  /** The supervisor. */
  protected readonly pidsOverhead = 1;

  protected needsScratch(): boolean {
    return false;
  }

  protected launch(exec: ExecSpec): Launch {
    return { argv: exec.argv, chdir: join(this.spec.checkout, exec.cwd) };
  }
}

export class HostBackend implements Backend {
  readonly name = 'host' as const;
  private cached: { caps: Capabilities; cgroups: CgroupLayout | null } | undefined;

  private inspect(): { caps: Capabilities; cgroups: CgroupLayout | null } {
    if (this.cached) return this.cached;
    let cgroups: CgroupLayout | null = null;
    try {
      cgroups = detectCgroups();
    } catch {
      cgroups = null;
    }
    const cg = cgroupLimits(cgroups);
    const available = supervisorAvailable();
    const caps: Capabilities = {
      backend: 'host',
      available,
      ...(available ? {} : { reason: `the exec supervisor ${supervisorPath()} is missing: run make setup (needs gcc)` }),
      isolation: { filesystem: false, network: false, process: false, syscalls: false, user: false },
      limits: { ...cg, wallTime: true, openFiles: true, fileSize: true, tmpSize: false },
      changeDetection: 'stat-index',
      snapshots: true,
      // The supervisor, the command's parent, makes the terminal on the host's devpts.
      pty: available,
      profiles: [],
      notes: [
        'no isolation: the command runs as you, in the vault\'s checkout, and can read and write anything you can; the policy is the only guard',
        cg.memory ? 'memory, pids and cpu limits through cgroups' : 'no writable cgroups: memory, pids and cpu limits cannot be enforced',
        'without a cgroup (asked for by a memory, pids or cpu limit) a command can detach itself: if it kills its supervisor, processes it started can outlive the exec',
      ],
    };
    this.cached = { caps, cgroups };
    return this.cached;
  }

  async probe(): Promise<Capabilities> {
    return this.inspect().caps;
  }

  async health(): Promise<{ ok: boolean; warnings: string[] }> {
    const { caps } = this.inspect();
    return { ok: caps.available, warnings: caps.available ? ['host backend: no isolation'] : [caps.reason ?? 'unavailable'] };
  }

  async create(spec: SandboxSpec): Promise<Sandbox> {
    const { caps, cgroups } = this.inspect();
    return new HostSandbox(spec, caps, cgroups);
  }
}

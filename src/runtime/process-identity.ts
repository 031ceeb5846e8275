// Telling processes apart across time: a pid plus its start time (from /proc) names one process, not
// a later one that reuses the pid, and a boot id plus pid namespace says where the pid means anything.
// Used for lease holders and for the supervisors a crashed daemon left behind.
import { readFileSync, readlinkSync } from 'node:fs';

export interface ProcessIdentity {
  pid: number;
  /** /proc/<pid>/stat starttime (clock ticks since boot); '' where there is no /proc. */
  started: string;
  /** The boot and pid namespace the pid means something in: `<boot id>/<pid namespace>`. */
  host: string;
}

/** The state letter and start time of a process, or undefined when /proc does not show it. */
export function procStat(pid: number): { state: string; started: string } | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    // The command name (field 2) may hold spaces and parentheses: fields are counted after its last ')'.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { state: fields[0] ?? '', started: fields[19] ?? '' };
  } catch {
    return undefined;
  }
}

function readOr(read: () => string, fallback: string): string {
  try {
    return read().trim();
  } catch {
    return fallback;
  }
}

/** `<boot id>/<pid namespace>` of this process. */
export function hostIdentity(): string {
  const boot = readOr(() => readFileSync('/proc/sys/kernel/random/boot_id', 'latin1'), '');
  const pidns = readOr(() => readlinkSync('/proc/self/ns/pid'), '');
  return `${boot}/${pidns}`;
}

/** This process's identity; `pid` (default: this process) for another one on the same host. */
export function identityOf(pid = process.pid, host = hostIdentity()): ProcessIdentity {
  return { pid, started: procStat(pid)?.started ?? '', host };
}

/** Whether the process `who` names still runs, seen from `self`. Unknowable cases count as alive. */
export function processAlive(who: ProcessIdentity, self: ProcessIdentity): boolean {
  if (who.host !== self.host) {
    // Written before a reboot: that process is gone. In another pid namespace its pid means nothing here.
    const boot = who.host.slice(0, who.host.indexOf('/'));
    const selfBoot = self.host.slice(0, self.host.indexOf('/'));
    return !(selfBoot !== '' && boot !== '' && boot !== selfBoot);
  }
  const { pid, started } = who;
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  if (pid === self.pid) return started === self.started;
  const stat = procStat(pid);
  if (stat) return stat.state !== 'Z' && stat.state !== 'X' && (started === '' || stat.started === started);
  // No /proc entry: gone, unless /proc hides other users' processes (hidepid) and the pid still answers.
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

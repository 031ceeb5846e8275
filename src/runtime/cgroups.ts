// Control groups for one exec: limits (memory, pids, cpu), usage (peak memory, cpu time, OOM
// kills) and a reliable "kill everything in it". Machines differ: cgroup v1 controllers, a v2
// unified tree, or both (here: memory/pids/cpu under v1, a v2 tree with no controllers, still
// good for freeze and kill). The layout is detected from /proc/self/mountinfo and /proc/self/cgroup.
//
// Groups live under this process's own group in each hierarchy (so limits set on Corral itself
// still bound its execs), at <base>/corral/<ownerPid>-<name>: a group whose owner pid is dead was
// left by a crashed Corral and cleanupStaleCgroups removes it.
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdir, rmdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { CorralError } from '../protocol/errors.ts';

export type CgroupControllerName = 'memory' | 'pids' | 'cpu' | 'cpuacct' | 'freezer';
const CONTROLLERS: readonly CgroupControllerName[] = ['memory', 'pids', 'cpu', 'cpuacct', 'freezer'];

export interface CgroupControllerInfo {
  version: 1 | 2;
  /** Where the hierarchy is mounted. */
  mount: string;
  /** Where Corral creates groups: this process's own group in that hierarchy. */
  path: string;
  /** Whether this process may create groups there. */
  writable: boolean;
}

export interface CgroupUnifiedInfo {
  mount: string;
  path: string;
  writable: boolean;
  /** Controllers the v2 tree offers to children of `path`. */
  controllers: string[];
}

export interface CgroupLayout {
  /** Per controller, the hierarchy that provides it (v1 preferred where both exist, as the v2 tree here holds none). */
  controllers: Partial<Record<CgroupControllerName, CgroupControllerInfo>>;
  /** The v2 tree, when mounted: used to freeze and kill a whole group even without v2 controllers. */
  unified: CgroupUnifiedInfo | null;
  notes: string[];
}

export interface CgroupLimits {
  memoryBytes?: number;
  pids?: number;
  /** Relative weight, 1024 = default. */
  cpuShares?: number;
  /** 100 = one core. */
  cpuQuotaPercent?: number;
}

export interface CgroupUsage {
  peakMemoryBytes: number | null;
  cpuUserMs: number | null;
  cpuSystemMs: number | null;
  oomKilled: boolean;
  /** How often an allocation hit the memory limit (v1 memory.failcnt, v2 memory.events max). */
  memoryFailures?: number;
}

interface MountInfoLine {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

/** Unescapes mountinfo's octal escapes (\040 for a space). */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function parseMountInfo(text: string): MountInfoLine[] {
  const out: MountInfoLine[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const right = line.slice(sep + 3).split(' ');
    if (left.length < 5 || right.length < 3) continue;
    out.push({ root: unescapeMount(left[3]!), mountPoint: unescapeMount(left[4]!), fsType: right[0]!, superOptions: right[2]!.split(',') });
  }
  return out;
}

/** /proc/self/cgroup: hierarchy controllers ('' for v2) → this process's path in it. */
export function parseProcCgroup(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (m) for (const c of m[2]!.split(',')) out.set(c, m[3]!);
  }
  return out;
}

/** The directory for `ownPath` inside a hierarchy mounted at `mountPoint` from `root`. */
function ownDir(mountPoint: string, root: string, ownPath: string | undefined): string {
  let rel = ownPath ?? '/';
  if (root !== '/' && (rel === root || rel.startsWith(root + '/'))) rel = rel.slice(root.length);
  // A path outside the mount's root (another cgroup namespace) cannot be reached: use the mount.
  if (rel.startsWith('/..')) rel = '/';
  return rel === '/' ? mountPoint : join(mountPoint, rel);
}

function canWrite(dir: string): boolean {
  try {
    accessSync(dir, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** The layout from `mountinfo` and `procCgroup` texts (pure: for tests), with writability checked by `writable`. */
export function layoutFrom(mountinfo: string, procCgroup: string, writable: (dir: string) => boolean = canWrite, read: (path: string) => string | null = readText): CgroupLayout {
  const own = parseProcCgroup(procCgroup);
  const notes: string[] = [];
  const controllers: CgroupLayout['controllers'] = {};
  let unified: CgroupUnifiedInfo | null = null;
  for (const m of parseMountInfo(mountinfo)) {
    if (m.fsType === 'cgroup2' && !unified) {
      const path = ownDir(m.mountPoint, m.root, own.get(''));
      const list = (read(join(path, 'cgroup.controllers')) ?? '').trim();
      unified = { mount: m.mountPoint, path, writable: writable(path), controllers: list ? list.split(/\s+/) : [] };
    } else if (m.fsType === 'cgroup') {
      for (const c of CONTROLLERS) {
        if (!m.superOptions.includes(c) || controllers[c]) continue;
        const path = ownDir(m.mountPoint, m.root, own.get(c));
        controllers[c] = { version: 1, mount: m.mountPoint, path, writable: writable(path) };
      }
    }
  }
  if (unified) {
    // v2 offers cpu accounting (cpu.stat) in every group and freezing in place of the freezer.
    const v2Has = (c: string): boolean => unified!.controllers.includes(c);
    for (const c of ['memory', 'pids', 'cpu'] as const) {
      if (!controllers[c] && v2Has(c)) controllers[c] = { version: 2, mount: unified.mount, path: unified.path, writable: unified.writable };
    }
    if (!unified.writable) notes.push(`the cgroup v2 tree at ${unified.path} is not writable by this user: groups cannot be frozen or killed as a whole there`);
    if (unified.controllers.length === 0) notes.push(`the cgroup v2 tree at ${unified.mount} holds no controllers: it serves to freeze and kill groups only`);
  } else notes.push('no cgroup v2 tree is mounted');
  for (const c of CONTROLLERS) {
    const info = controllers[c];
    if (!info) notes.push(`no ${c} controller is mounted`);
    else if (!info.writable) notes.push(`the ${c} controller (v${info.version}) at ${info.path} is not writable by this user: run Corral as root or in a delegated cgroup`);
  }
  return { controllers, unified, notes };
}

/** This machine's cgroup layout; never throws. */
export function detectCgroups(): CgroupLayout {
  const mountinfo = readText('/proc/self/mountinfo');
  const procCgroup = readText('/proc/self/cgroup');
  if (mountinfo === null || procCgroup === null) return { controllers: {}, unified: null, notes: ['/proc/self/mountinfo or /proc/self/cgroup is unreadable: no cgroup support'] };
  return layoutFrom(mountinfo, procCgroup);
}

function usable(layout: CgroupLayout, c: CgroupControllerName): CgroupControllerInfo | undefined {
  const info = layout.controllers[c];
  return info?.writable ? info : undefined;
}

/** Which requested limits cannot be enforced with `layout` (by name: memory, pids, cpu). */
export function cgroupSupport(layout: CgroupLayout, limits: CgroupLimits): { ok: boolean; missing: string[] } {
  const missing: string[] = [];
  if (limits.memoryBytes !== undefined && !usable(layout, 'memory')) missing.push('memory');
  if (limits.pids !== undefined && !usable(layout, 'pids')) missing.push('pids');
  if ((limits.cpuShares !== undefined || limits.cpuQuotaPercent !== undefined) && !usable(layout, 'cpu')) missing.push('cpu');
  return { ok: missing.length === 0, missing };
}

const GROUP_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const STALE_NAME = /^(\d+)-[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const CPU_PERIOD_US = 100_000;

function checkLimits(l: CgroupLimits): void {
  const bad = (what: string, v: unknown, rule: string): CorralError => new CorralError('INVALID_ARGUMENT', `${what} must be ${rule}, got ${String(v)}`, { [what]: v });
  if (l.memoryBytes !== undefined && !(Number.isSafeInteger(l.memoryBytes) && l.memoryBytes >= 1 << 20)) throw bad('memoryBytes', l.memoryBytes, 'a whole number of bytes, at least 1 MiB');
  if (l.pids !== undefined && !(Number.isSafeInteger(l.pids) && l.pids >= 1)) throw bad('pids', l.pids, 'a whole number from 1');
  if (l.cpuShares !== undefined && !(Number.isInteger(l.cpuShares) && l.cpuShares >= 2 && l.cpuShares <= 262144)) throw bad('cpuShares', l.cpuShares, 'a whole number from 2 to 262144');
  if (l.cpuQuotaPercent !== undefined && !(Number.isFinite(l.cpuQuotaPercent) && l.cpuQuotaPercent >= 1 && l.cpuQuotaPercent <= 100_000)) throw bad('cpuQuotaPercent', l.cpuQuotaPercent, 'a number from 1 (100 = one core)');
}

/** Synchronous short sleep (the kill loop waits a few ms for the kernel). */
function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function readPids(dir: string): number[] {
  const text = readText(join(dir, 'cgroup.procs'));
  if (!text) return [];
  return text.split('\n').filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 0);
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Gone already.
  }
}

/** Removes the shared corral/ parent when no group is left in it (fails harmlessly otherwise). */
function removeIfEmpty(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // Still holds groups, or busy: leave it.
  }
}

/** Removes a group with no members at once; false when it has some (or cannot be removed now). */
function removeEmpty(dir: string): boolean {
  try {
    rmdirSync(dir);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'ENOENT';
  }
}

function removeDir(dir: string): boolean {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return true;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return true;
      if (code !== 'EBUSY') return false;
      sleepMs(2);
    }
  }
  return false;
}

/** Freezes, signals every member, thaws, until the group is empty (SIGKILL) or once (other signals). */
function killGroup(dirs: string[], v2: string | null, v1Freezer: string | null, signal: NodeJS.Signals): void {
  const all = (): number[] => [...new Set(dirs.flatMap(readPids))];
  if (signal === 'SIGKILL' && v2 && existsSync(join(v2, 'cgroup.kill'))) {
    try {
      writeFileSync(join(v2, 'cgroup.kill'), '1');
    } catch {
      // Fall back to the freeze loop below.
    }
  }
  const freeze = (on: boolean): void => {
    try {
      if (v2) writeFileSync(join(v2, 'cgroup.freeze'), on ? '1' : '0');
      else if (v1Freezer) writeFileSync(join(v1Freezer, 'freezer.state'), on ? 'FROZEN' : 'THAWED');
    } catch {
      // Without freezing, a fork between listing and killing may escape one round; the loop catches it.
    }
  };
  const deadline = Date.now() + 5000;
  for (let round = 0; ; round++) {
    const before = all();
    if (before.length === 0) return;
    freeze(true);
    for (const pid of all()) killPid(pid, signal);
    freeze(false);
    if (signal !== 'SIGKILL' || Date.now() > deadline) return;
    sleepMs(Math.min(1 + round, 10));
  }
}

function readNumber(path: string): number | null {
  const t = readText(path);
  if (t === null) return null;
  const n = Number(t.trim());
  return Number.isFinite(n) ? n : null;
}

/** `key value` lines (memory.events, cpu.stat, memory.oom_control, cpuacct.stat) → map. */
function readKeyed(path: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of (readText(path) ?? '').split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (k && v !== undefined && Number.isFinite(Number(v))) out.set(k, Number(v));
  }
  return out;
}

/**
 * How many sets made by createAsync() are alive, per layout (a layout is detected once per backend
 * and shared by its execs): the sign that execs run side by side. Keyed by the layout object, so
 * independent layouts (tests, several backends) count apart.
 */
const live = new WeakMap<CgroupLayout, number>();

function liveSets(layout: CgroupLayout): number {
  return live.get(layout) ?? 0;
}

interface Group {
  /** The v1 controllers this directory serves (co-mounted ones share it); 'unified' for the v2 group. */
  controllers: (CgroupControllerName | 'unified')[];
  version: 1 | 2;
  dir: string;
}

export class CgroupSet {
  readonly name: string;
  private readonly groups: Group[];
  private destroyed = false;
  /** The layout whose live sets this one counts among (createAsync), until it is destroyed. */
  private tracked: CgroupLayout | undefined;

  private constructor(name: string, groups: Group[]) {
    this.name = name;
    this.groups = groups;
  }

  /** The cgroup.procs files a process writes its pid into to join every group. */
  get procsFiles(): string[] {
    return this.groups.map((g) => join(g.dir, 'cgroup.procs'));
  }

  /**
   * One group per exec under every usable controller (plus the v2 tree for freeze and kill),
   * named corral/<ownerPid>-<name>, with `limits` applied. Throws LIMIT_UNENFORCEABLE when a
   * requested limit has no writable controller, and cleans up if setting a limit fails.
   */
  static create(layout: CgroupLayout, name: string, limits: CgroupLimits, ownerPid: number = process.pid): CgroupSet {
    const { groups, enableV2 } = planGroups(layout, name, limits, ownerPid);
    // The groups array is filled as they are made, so a failure half way destroys what was made.
    const made: Group[] = [];
    const set = new CgroupSet(name, made);
    try {
      if (enableV2) enableV2Controllers(enableV2.path, enableV2.controllers);
      for (const g of groups) {
        makeGroupDir(g.dir);
        made.push(g);
      }
      set.applyLimits(layout, limits);
    } catch (e) {
      set.destroy();
      throw setupError(e, name);
    }
    return set;
  }

  /**
   * create() for an exec of a busy process: while other groups of `layout` are alive (execs run
   * side by side), the directories are made off the event loop, since the kernel takes its global
   * cgroup lock for each (exec supervisors joining their groups hold it too) and the event loop
   * would wait there for every exec. Alone, the plain calls are cheaper (a thread pool round trip
   * costs more than the syscall).
   */
  static async createAsync(layout: CgroupLayout, name: string, limits: CgroupLimits, ownerPid: number = process.pid): Promise<CgroupSet> {
    if (liveSets(layout) === 0) {
      const set = CgroupSet.create(layout, name, limits, ownerPid);
      set.track(layout);
      return set;
    }
    const { groups, enableV2 } = planGroups(layout, name, limits, ownerPid);
    const made: Group[] = [];
    const set = new CgroupSet(name, made);
    set.track(layout);
    try {
      if (enableV2) enableV2Controllers(enableV2.path, enableV2.controllers);
      const results = await Promise.allSettled(groups.map((g) => makeGroupDirAsync(g.dir)));
      results.forEach((r, i) => r.status === 'fulfilled' && made.push(groups[i]!));
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      set.applyLimits(layout, limits);
    } catch (e) {
      await set.destroyAsync();
      throw setupError(e, name);
    }
    return set;
  }

  /** Counts this set among `layout`'s live ones until destroyAsync() (see createAsync). */
  private track(layout: CgroupLayout): void {
    this.tracked = layout;
    live.set(layout, liveSets(layout) + 1);
  }

  private group(c: CgroupControllerName): Group | undefined {
    return this.groups.find((g) => g.controllers.includes(c));
  }

  private dirOf(c: CgroupControllerName): Group | undefined {
    const v1 = this.group(c);
    if (v1) return v1;
    return this.groups.find((g) => g.version === 2);
  }

  private v2Dir(): string | null {
    return this.groups.find((g) => g.version === 2)?.dir ?? null;
  }

  private applyLimits(layout: CgroupLayout, l: CgroupLimits): void {
    const w = (dir: string, file: string, value: string | number): void => writeFileSync(join(dir, file), String(value));
    const v = (c: CgroupControllerName): 1 | 2 | undefined => layout.controllers[c]?.version;
    if (l.memoryBytes !== undefined) {
      const g = this.dirOf('memory')!;
      if (v('memory') === 1) {
        w(g.dir, 'memory.limit_in_bytes', l.memoryBytes);
        // The same bound on memory+swap: no escaping the limit into swap.
        if (existsSync(join(g.dir, 'memory.memsw.limit_in_bytes'))) w(g.dir, 'memory.memsw.limit_in_bytes', l.memoryBytes);
      } else {
        w(g.dir, 'memory.max', l.memoryBytes);
        if (existsSync(join(g.dir, 'memory.swap.max'))) w(g.dir, 'memory.swap.max', 0);
      }
    }
    if (l.pids !== undefined) w(this.dirOf('pids')!.dir, 'pids.max', l.pids);
    if (l.cpuShares !== undefined) {
      const g = this.dirOf('cpu')!;
      if (v('cpu') === 1) w(g.dir, 'cpu.shares', l.cpuShares);
      else w(g.dir, 'cpu.weight', Math.max(1, Math.min(10000, Math.round(1 + ((l.cpuShares - 2) * 9999) / 262142))));
    }
    if (l.cpuQuotaPercent !== undefined) {
      const g = this.dirOf('cpu')!;
      const quota = Math.max(1000, Math.round((l.cpuQuotaPercent / 100) * CPU_PERIOD_US));
      if (v('cpu') === 1) {
        w(g.dir, 'cpu.cfs_period_us', CPU_PERIOD_US);
        w(g.dir, 'cpu.cfs_quota_us', quota);
      } else w(g.dir, 'cpu.max', `${quota} ${CPU_PERIOD_US}`);
    }
  }

  /** Every pid currently in the group. */
  pids(): number[] {
    return [...new Set(this.groups.flatMap((g) => readPids(g.dir)))].sort((a, b) => a - b);
  }

  usage(): CgroupUsage {
    const out: CgroupUsage = { peakMemoryBytes: null, cpuUserMs: null, cpuSystemMs: null, oomKilled: false };
    const mem = this.group('memory') ?? this.groups.find((g) => g.version === 2 && existsSync(join(g.dir, 'memory.peak')));
    if (mem?.version === 1) {
      out.peakMemoryBytes = readNumber(join(mem.dir, 'memory.max_usage_in_bytes'));
      out.oomKilled = (readKeyed(join(mem.dir, 'memory.oom_control')).get('oom_kill') ?? 0) > 0;
      const fail = readNumber(join(mem.dir, 'memory.failcnt'));
      if (fail !== null) out.memoryFailures = fail;
    } else if (mem) {
      out.peakMemoryBytes = readNumber(join(mem.dir, 'memory.peak'));
      const events = readKeyed(join(mem.dir, 'memory.events'));
      out.oomKilled = (events.get('oom_kill') ?? 0) > 0;
      out.memoryFailures = events.get('max') ?? 0;
    }
    const acct = this.group('cpuacct');
    const user = acct && readNumber(join(acct.dir, 'cpuacct.usage_user'));
    const sys = acct && readNumber(join(acct.dir, 'cpuacct.usage_sys'));
    if (acct && user != null && sys != null) {
      out.cpuUserMs = user / 1e6;
      out.cpuSystemMs = sys / 1e6;
    } else {
      const v2 = this.v2Dir();
      const stat = v2 ? readKeyed(join(v2, 'cpu.stat')) : new Map<string, number>();
      if (stat.has('user_usec')) {
        out.cpuUserMs = stat.get('user_usec')! / 1000;
        out.cpuSystemMs = (stat.get('system_usec') ?? 0) / 1000;
      }
    }
    return out;
  }

  /**
   * Signals every process in the group while it is frozen, so none forks away in between. With
   * SIGKILL (the default) it repeats until the group is empty (v2 cgroup.kill first when present).
   */
  killAll(signal: NodeJS.Signals = 'SIGKILL'): void {
    const freezer = this.group('freezer')?.dir ?? null;
    killGroup(this.groups.map((g) => g.dir), this.v2Dir(), freezer, signal);
  }

  /** Kills what is left and removes every group; safe to call more than once. */
  destroy(): void {
    if (this.destroyed) return;
    // Usually every process has left by now, and an empty group goes with one rmdir (the kernel
    // refuses one that still has members): the freeze-and-kill rounds are for the others only.
    try {
      this.finishDestroy(this.groups.filter((g) => !removeEmpty(g.dir)));
    } finally {
      this.untrack();
      for (const g of this.groups) removeIfEmpty(dirname(g.dir));
    }
  }

  /**
   * destroy() for a set made by createAsync(): with other sets of its layout alive, the usual case
   * (every group empty already) is handled off the event loop, and the last set gone removes the
   * shared parents.
   */
  async destroyAsync(): Promise<void> {
    if (this.destroyed) return;
    const layout = this.tracked;
    // Alone, the plain calls are cheaper. Either way the set stops counting, even one that cannot be
    // removed now (the others do not wait for it).
    if (!layout || liveSets(layout) <= 1) return this.destroy();
    const removed = await Promise.all(this.groups.map((g) => rmdir(g.dir).then(() => true, (e: NodeJS.ErrnoException) => e.code === 'ENOENT')));
    try {
      this.finishDestroy(this.groups.filter((_, i) => !removed[i]));
    } finally {
      if (this.untrack() === 0 && this.destroyed)
        await Promise.all([...new Set(this.groups.map((g) => dirname(g.dir)))].map((d) => rmdir(d).catch(() => undefined)));
    }
  }

  /** Stops counting this set among its layout's live ones; returns how many are left. */
  private untrack(): number {
    const layout = this.tracked;
    if (!layout) return 0;
    this.tracked = undefined;
    const left = Math.max(0, liveSets(layout) - 1);
    live.set(layout, left);
    return left;
  }

  /** Kills what is left in the `busy` groups (those an rmdir refused) and removes them. */
  private finishDestroy(busy: Group[]): void {
    if (busy.length > 0) this.killAll();
    const left = busy.filter((g) => !removeDir(g.dir)).map((g) => g.dir);
    this.destroyed = left.length === 0;
    if (left.length > 0) throw new CorralError('EXEC_FAILED', `cannot remove the cgroups ${left.join(', ')}: processes are still in them; retry, or remove them as root`, { left });
  }
}

/** The groups create() makes for `limits` (validated), and the v2 controllers to enable first. */
function planGroups(layout: CgroupLayout, name: string, limits: CgroupLimits, ownerPid: number): { groups: Group[]; enableV2?: { path: string; controllers: string[] } } {
  if (!GROUP_NAME.test(name)) throw new CorralError('INVALID_ARGUMENT', `a cgroup name is letters, digits, '.', '_' and '-' (at most 64), got '${name}'`, { name });
  checkLimits(limits);
  const support = cgroupSupport(layout, limits);
  if (!support.ok)
    throw new CorralError(
      'LIMIT_UNENFORCEABLE',
      `cannot enforce the ${support.missing.join(', ')} limit${support.missing.length > 1 ? 's' : ''} here: no writable cgroup controller (run \`corral doctor\`; run as root or in a delegated cgroup, or drop the limit)`,
      { missing: support.missing, notes: layout.notes },
    );
  const leaf = `${ownerPid}-${name}`;
  const groups: Group[] = [];
  const add = (controller: Group['controllers'][number], version: 1 | 2, base: string): void => {
    const dir = join(base, 'corral', leaf);
    const existing = groups.find((g) => g.dir === dir);
    if (existing) existing.controllers.push(controller);
    else groups.push({ controllers: [controller], version, dir });
  };
  // Only the controllers this exec's limits need (each group costs a mkdir, writes and a join),
  // plus one that can freeze and kill the group as a whole: v2 when writable, else v1 freezer.
  const cpu = limits.cpuShares !== undefined || limits.cpuQuotaPercent !== undefined;
  const needed: Record<CgroupControllerName, boolean> = {
    memory: limits.memoryBytes !== undefined,
    pids: limits.pids !== undefined,
    cpu,
    cpuacct: cpu,
    freezer: !layout.unified?.writable,
  };
  for (const c of CONTROLLERS) {
    const info = usable(layout, c);
    if (info?.version === 1 && needed[c]) add(c, 1, info.path);
  }
  let enableV2: { path: string; controllers: string[] } | undefined;
  if (layout.unified?.writable) {
    const u = layout.unified;
    const wanted = ['memory', 'pids', 'cpu'].filter((c) => layout.controllers[c as CgroupControllerName]?.version === 2);
    if (wanted.length > 0) enableV2 = { path: u.path, controllers: wanted };
    add('unified', 2, u.path);
  }
  return { groups, ...(enableV2 ? { enableV2 } : {}) };
}

function setupError(e: unknown, name: string): CorralError {
  if (e instanceof CorralError) return e;
  return new CorralError('LIMIT_UNENFORCEABLE', `cannot set up the cgroup for this exec: ${(e as Error).message} (run \`corral doctor\`)`, { name }, e);
}

function conflict(dir: string): CorralError {
  return new CorralError('CONFLICT', `the cgroup ${dir} already exists: pick another exec name`, { dir });
}

// The shared corral/ parent is there while other groups live: one mkdir, and the parent only when
// it is missing (another set's destroy may remove it again in between: retry).
function makeGroupDir(dir: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      return void mkdirSync(dir);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw conflict(dir);
      if (code !== 'ENOENT' || attempt >= 3) throw e;
      mkdirSync(dirname(dir), { recursive: true });
    }
  }
}

async function makeGroupDirAsync(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      return void (await mkdir(dir));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EEXIST') throw conflict(dir);
      if (code !== 'ENOENT' || attempt >= 3) throw e;
      await mkdir(dirname(dir), { recursive: true });
    }
  }
}

/** Enables `controllers` for children of `path` and of `path`/corral (the v2 "no internal processes" rule). */
function enableV2Controllers(path: string, controllers: string[]): void {
  const line = controllers.map((c) => `+${c}`).join(' ');
  writeFileSync(join(path, 'cgroup.subtree_control'), line);
  mkdirSync(join(path, 'corral'), { recursive: true });
  writeFileSync(join(path, 'corral', 'cgroup.subtree_control'), line);
}

/**
 * Removes groups left by a Corral that died (their owner pid is not alive), killing whatever
 * still runs in them. Returns how many groups (by name) were removed.
 */
export function cleanupStaleCgroups(layout: CgroupLayout, isAlive: (ownerPid: number) => boolean): number {
  const bases = new Set<string>();
  for (const c of CONTROLLERS) {
    const info = layout.controllers[c];
    if (info?.writable) bases.add(info.path);
  }
  if (layout.unified?.writable) bases.add(layout.unified.path);
  const stale = new Map<string, string[]>();
  for (const base of bases) {
    let names: string[];
    try {
      names = readdirSync(join(base, 'corral'));
    } catch {
      continue;
    }
    for (const n of names) {
      const m = STALE_NAME.exec(n);
      if (!m || isAlive(Number(m[1]))) continue;
      stale.set(n, [...(stale.get(n) ?? []), join(base, 'corral', n)]);
    }
  }
  let removed = 0;
  const v2Base = layout.unified?.path;
  for (const [name, dirs] of stale) {
    const v2 = v2Base ? (dirs.find((d) => d === join(v2Base, 'corral', name)) ?? null) : null;
    const freezerBase = layout.controllers.freezer?.version === 1 ? layout.controllers.freezer.path : undefined;
    const freezer = freezerBase ? (dirs.find((d) => d === join(freezerBase, 'corral', name)) ?? null) : null;
    killGroup(dirs, v2, freezer, 'SIGKILL');
    if (dirs.map(removeDir).every(Boolean)) removed++;
  }
  return removed;
}

/** Whether a process with this pid exists (for cleanupStaleCgroups). */
/** Whether `pid` runs: a zombie (dead, not yet reaped by its parent) does not. */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true;
  }
}

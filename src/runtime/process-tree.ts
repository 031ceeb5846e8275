// The processes below a root, found by walking /proc/<pid>/task/<tid>/children (the one walker of
// the project), and stopping and continuing them with SIGSTOP/SIGCONT. The supervisor is a child subreaper, so a
// descendant that daemonises stays below it and is found too. The root itself is left running: it
// must still handle the exec's cancel and timeout.
import { readFileSync, readdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { procStat } from './process-identity.ts';

/** How often stopTree walks the tree again while processes are still on their way to stopped (doubling up to 20 ms). */
const ROUND_MS = 2;
const MAX_ROUND_MS = 20;
/**
 * How long stopTree waits for the tree to settle: a process in uninterruptible sleep (an exec
 * loading its binary on a loaded machine) stops only when it wakes.
 */
const SETTLE_MS = 5000;

/** The direct children of `pid` now (forked by any of its threads); [] when it is gone. */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  // Each thread has its own children file: a child forked by any thread is listed under that thread.
  for (const tid of tasks) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1');
    } catch {
      continue;
    }
    for (const word of text.split(' ')) {
      const n = Number(word);
      if (word !== '' && Number.isSafeInteger(n) && n > 0) out.push(n);
    }
  }
  return out;
}

/** Every descendant of `root` now, parents before their children (the root not included). */
export function descendants(root: number): number[] {
  const seen = new Set<number>([root]);
  const out: number[] = [];
  for (let i = -1; i < out.length; i++) {
    const pid = i < 0 ? root : out[i]!;
    for (const c of childrenOf(pid)) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
    }
  }
  return out;
}

function signal(pid: number, sig: 'SIGSTOP' | 'SIGCONT'): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone meanwhile, or not ours to signal: nothing to stop */
  }
}

/** Stopped (T), traced (t), or no longer running. */
function settled(pid: number): boolean {
  const state = procStat(pid)?.state;
  return state === undefined || state === 'T' || state === 't' || state === 'Z' || state === 'X';
}

/**
 * Sends SIGSTOP to every descendant of `root`, walking again until a walk finds no new process and
 * every one found shows as stopped: a process that forked while it was being stopped has its child
 * stopped too, and once all are stopped none can fork. Returns the pids stopped and whether the
 * tree settled (false: a process had not stopped yet when the rounds ran out).
 */
export async function stopTree(root: number): Promise<{ pids: number[]; settled: boolean }> {
  const stopped = new Set<number>();
  const deadline = Date.now() + SETTLE_MS;
  for (let wait = ROUND_MS; Date.now() < deadline; wait = Math.min(MAX_ROUND_MS, wait * 2)) {
    const now = descendants(root);
    let fresh = false;
    for (const pid of now) {
      if (stopped.has(pid)) continue;
      signal(pid, 'SIGSTOP');
      stopped.add(pid);
      fresh = true;
    }
    if (!fresh && now.every(settled)) return { pids: [...stopped], settled: true };
    // A new process found: look again soon (it may have forked before it stopped).
    await sleep(fresh ? ROUND_MS : wait);
  }
  return { pids: [...stopped], settled: false };
}

/** Sends SIGCONT to every descendant of `root` (children first, so no parent runs before its child can). */
export function continueTree(root: number): number[] {
  const pids = descendants(root).reverse();
  for (const pid of pids) signal(pid, 'SIGCONT');
  return pids;
}

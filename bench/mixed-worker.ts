// One process of the mixed workload: its own in-process Corral on the shared home, working in its
// own directory /w<k> of a vault, with a fixed mix of operations until the deadline.
import { Corral } from '../src/services/corral.ts';
import { toCorralError } from '../src/protocol/errors.ts';
import { benchCaller, rng } from './lib.ts';
import { MIX, type WorkerDone, type WorkerStart } from './mixed-workload.ts';

const WORDS = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet'];

/** Opens the Corral and returns the loop, so opening is not part of the timed work. */
function prepare(start: WorkerStart): (goAt: number) => WorkerDone {
  const corral = new Corral({ home: start.home, caller: benchCaller });
  const random = rng(1000 + start.worker);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const base = `/w${start.worker}`;
  const dirs = Array.from({ length: start.seedDirs }, (_, j) => `${base}/d${j}`);
  const files: string[] = [];
  for (const d of dirs) for (let i = 0; i < start.seedFiles; i++) files.push(`${d}/s${i}.txt`);
  const enc = new TextEncoder();
  const filler = 'x'.repeat(4096);
  let counter = 0;
  const fresh = () => `${pick(dirs)}/n${start.worker}-${counter++}.txt`;
  const ops: Record<string, () => void> = {
    write: () => {
      const path = random() < 0.5 ? pick(files) : fresh();
      const text = `${pick(WORDS)} ${pick(WORDS)} ${counter++} ${filler.slice(0, 1024 + Math.floor(random() * 3072))}`;
      corral.files.write(start.vault, path, enc.encode(text));
      if (!files.includes(path)) files.push(path);
    },
    read: () => void corral.files.cat(start.vault, pick(files)),
    list: () => void corral.files.ls(start.vault, pick(dirs)),
    search: () => void corral.search.search(start.vault, pick(WORDS), { limit: 10 }),
    delete: () => {
      if (files.length < 20) return;
      const i = Math.floor(random() * files.length);
      corral.files.rm(start.vault, files[i]!);
      files.splice(i, 1);
    },
    copy: () => {
      const to = fresh();
      corral.files.cp(start.vault, pick(files), to);
      files.push(to);
    },
    move: () => {
      const i = Math.floor(random() * files.length);
      const to = fresh();
      corral.files.mv(start.vault, files[i]!, to);
      files[i] = to;
    },
  };
  return (goAt) => {
    const byOp: Record<string, number> = {};
    const latency: Record<string, number[]> = {};
    const errors: Record<string, number> = {};
    let done = 0;
    const deadline = goAt + start.seconds * 1000;
    while (performance.now() < deadline) {
      let roll = random() * 100;
      const [name] = MIX.find(([, weight]) => (roll -= weight) < 0) ?? MIX[0]!;
      try {
        const t0 = performance.now();
        ops[name]!();
        (latency[name] ??= []).push(performance.now() - t0);
        byOp[name] = (byOp[name] ?? 0) + 1;
        done++;
      } catch (e) {
        const code = toCorralError(e).code;
        errors[code] = (errors[code] ?? 0) + 1;
      }
    }
    const elapsedMs = performance.now() - goAt;
    corral.close();
    return { type: 'done', worker: start.worker, ops: done, elapsedMs, byOp, latency, errors };
  };
}

let loop: ((goAt: number) => WorkerDone) | undefined;
process.on('message', (msg: WorkerStart | { type: 'go' }) => {
  if (msg.type === 'start') {
    loop = prepare(msg);
    process.send!({ type: 'ready' });
  } else if (msg.type === 'go' && loop) {
    process.send!(loop(performance.now()), () => process.exit(0));
  }
});

// Times a command spawned with Node's child_process.spawn, awaited, RUNS times, from this small
// process. Baselines that spawn (the spawn floor, `cp -a`) run here rather than in the bench
// process, because spawning from Node costs more the more memory the parent holds (libuv forks).
//   node bench/time-command.ts RUNS CMD [ARGS...]   prints the Stats as JSON; `{i}` in an
//   argument becomes the run's index (warm-up runs included), e.g. a fresh destination per run.
import { execFileSync, spawn } from 'node:child_process';
import { measure, type Stats } from './lib.ts';

export function run(command: string, args: readonly string[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn(command, args, { stdio: ['ignore', 'ignore', 'inherit'] });
    p.on('error', reject);
    p.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${command} exited with ${code}`))));
  });
}

/** Runs this script as its own process and returns its Stats. */
export function timeCommand(runs: number, command: string, args: readonly string[] = [], warmup = 1): Stats {
  const out = execFileSync(process.execPath, ['--disable-warning=ExperimentalWarning', import.meta.filename, String(runs), String(warmup), command, ...args], { encoding: 'utf8' });
  return JSON.parse(out) as Stats;
}

if (import.meta.main) {
  const [runs, warmup, command, ...args] = process.argv.slice(2);
  const stats = await measure(Number(runs), (i) => run(command!, args.map((a) => a.replaceAll('{i}', String(i)))), { warmup: Number(warmup) });
  console.log(JSON.stringify(stats));
}

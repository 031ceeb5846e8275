// The exec pipeline as an explicit state machine: each stage may only go to the stages listed
// here, so a bug that skips the policy or commits before summarizing fails loudly. Every stage's
// duration lands in the result.
import { CorralError } from '../protocol/errors.ts';
import type { ExecStage } from '../protocol/exec-result.ts';

export type ExecState = 'created' | ExecStage | 'completed' | 'failed';

const transitions: Record<ExecState, readonly ExecState[]> = {
  created: ['validating'],
  validating: ['resolving', 'cleaning_up'],
  resolving: ['policy', 'cleaning_up'],
  // policy may end the exec (denied, pending): completed carries that status.
  policy: ['baseline', 'completed', 'cleaning_up'],
  baseline: ['checkpointing', 'mounting', 'cleaning_up'],
  checkpointing: ['mounting', 'cleaning_up'],
  mounting: ['executing', 'cleaning_up'],
  executing: ['summarizing', 'cleaning_up'],
  summarizing: ['completed', 'cleaning_up'],
  cleaning_up: ['failed'],
  completed: [],
  failed: [],
};

export class ExecStateMachine {
  private current: ExecState = 'created';
  private since = performance.now();
  private readonly started = performance.now();
  readonly stages: Partial<Record<ExecStage, number>> = {};
  readonly history: ExecState[] = ['created'];

  get state(): ExecState {
    return this.current;
  }

  to(next: ExecState): void {
    if (!transitions[this.current].includes(next))
      throw new CorralError('INTERNAL', `illegal exec state transition ${this.current} -> ${next}`, { from: this.current, to: next });
    this.close();
    this.current = next;
    this.history.push(next);
  }

  /** Adds measured time to a stage the sandbox timed itself (mounting happens inside the backend). */
  record(stage: ExecStage, ms: number): void {
    this.stages[stage] = round((this.stages[stage] ?? 0) + ms);
  }

  /** Moves time already counted under the current stage to another one. */
  shift(from: ExecStage, to: ExecStage, ms: number): void {
    this.stages[from] = round(Math.max(0, (this.stages[from] ?? 0) - ms));
    this.record(to, ms);
  }

  elapsedMs(): number {
    return round(performance.now() - this.started);
  }

  private close(): void {
    const now = performance.now();
    const s = this.current;
    if (s !== 'created' && s !== 'completed' && s !== 'failed') this.record(s, now - this.since);
    this.since = now;
  }

  finish(): void {
    this.close();
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

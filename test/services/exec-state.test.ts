import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ExecStateMachine } from '../../src/services/exec-state.ts';
import { isCorralError } from '../../src/protocol/errors.ts';

test('the happy path visits every stage in order and times each', () => {
  const sm = new ExecStateMachine();
  for (const s of ['validating', 'resolving', 'policy', 'baseline', 'checkpointing', 'mounting', 'executing', 'summarizing', 'completed'] as const) sm.to(s);
  sm.finish();
  assert.deepEqual(Object.keys(sm.stages), ['validating', 'resolving', 'policy', 'baseline', 'checkpointing', 'mounting', 'executing', 'summarizing']);
  assert.ok(Object.values(sm.stages).every((ms) => ms >= 0));
});

test('illegal transitions are refused: no executing before policy, nothing after completed', () => {
  const sm = new ExecStateMachine();
  sm.to('validating');
  assert.throws(() => sm.to('executing'), (e) => isCorralError(e, 'INTERNAL') && /validating -> executing/.test(e.message));
  sm.to('resolving');
  sm.to('policy');
  sm.to('completed');
  assert.throws(() => sm.to('cleaning_up'));
});

test('every stage can fail through cleaning_up, which only leads to failed', () => {
  for (const stop of ['validating', 'resolving', 'policy', 'baseline', 'mounting', 'executing', 'summarizing'] as const) {
    const sm = new ExecStateMachine();
    const path = ['validating', 'resolving', 'policy', 'baseline', 'mounting', 'executing', 'summarizing'] as const;
    for (const s of path) {
      sm.to(s);
      if (s === stop) break;
    }
    sm.to('cleaning_up');
    assert.throws(() => sm.to('completed'));
    sm.to('failed');
    assert.equal(sm.state, 'failed');
  }
});

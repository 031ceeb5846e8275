// Every command, at every level, has a description and --help with examples.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/main.ts';
import { CliContext } from '../../src/cli/context.ts';

function allCommands(cmd: Command, prefix = ''): [string, Command][] {
  return cmd.commands.flatMap((sub) => {
    const name = `${prefix} ${sub.name()}`.trim();
    return [[name, sub] as [string, Command], ...allCommands(sub, name)];
  });
}

test('every command has a description and --help with examples', () => {
  const commands = allCommands(buildProgram(new CliContext()));
  assert.ok(commands.length >= 50, `only ${commands.length} commands`);
  for (const [name, cmd] of commands) {
    let help = '';
    cmd.configureOutput({ writeOut: (s) => void (help += s), writeErr: (s) => void (help += s) });
    cmd.outputHelp();
    assert.ok(cmd.description().length > 10, `${name} has no description`);
    assert.match(help, /Examples:\n  \$ corral /, `${name} --help has no examples`);
  }
});

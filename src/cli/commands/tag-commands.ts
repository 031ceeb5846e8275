// Placeholder: filled in by its own work package.
import type { Command } from 'commander';
import type { CliContext } from '../context.ts';

export function registerTagCommands(program: Command, ctx: CliContext): void {
  void program;
  void ctx;
}

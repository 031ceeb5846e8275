// corral doctor: what this machine offers for isolation, which backend `auto` picks, and how to fix what is missing.
import type { Command } from 'commander';
import { probeMachine, type MachineReport } from '../../runtime/machine-probe.ts';
import type { CliContext } from '../context.ts';
import { type Colors, escapeControls, examples } from '../output.ts';

function render(r: MachineReport, c: Colors): string[] {
  const width = Math.max(...r.checks.map((k) => k.id.length));
  const lines = r.checks.map((k) => `${k.ok ? c.green('✓') : c.red('✗')} ${k.id.padEnd(width)}  ${escapeControls(k.summary)}${k.detail ? c.dim(`\n  ${' '.repeat(width)}  ${escapeControls(k.detail)}`) : ''}`);
  const ns = r.backends.namespace;
  lines.push('', `backends: host ${c.green('available')}, namespace ${ns.available ? c.green('available') : `${c.red('unavailable')} (${escapeControls(ns.reason ?? '')})`}`, `auto picks: ${c.bold(r.auto)}`);
  const fixes = r.checks.filter((k) => !k.ok && k.fix);
  if (fixes.length > 0) lines.push('', 'to fix:', ...fixes.map((k) => `  ${k.id}: ${escapeControls(k.fix!)}`));
  return lines;
}

export function registerDoctorCommands(program: Command, ctx: CliContext): void {
  program
    .command('doctor')
    .description('check what this machine offers for sandboxing (bubblewrap, namespaces, cgroups, seccomp, ...) and how to fix what is missing')
    .addHelpText(
      'after',
      `
A ✗ on an optional check (landlock, kvm) changes nothing today. The namespace backend needs
bubblewrap, user namespaces and seccomp; without them \`auto\` falls back to the host backend.
${examples('corral doctor', 'corral doctor --json')}`,
    )
    .action(
      ctx.action(async () => {
        ctx.out.result(await probeMachine(), render);
      }),
    );
}

// `make run`, second half: an agent platform drives the Corral daemon through the TypeScript SDK
// over the daemon's Unix socket. It opens a sandbox on its own fork of the demo's workspace, runs
// commands (collected, streamed, in the background), shows what they changed, and destroys it.
import { connect } from '../src/sdk/node.ts';

const vault = process.argv[2] ?? 'agent-1';
const tty = process.stdout.isTTY && !process.env.NO_COLOR;
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const say = (s: string) => console.log(dim(`sdk> ${s}`));

const corral = connect();
try {
  const ping = await corral.ping();
  console.log(`connected to corral daemon ${ping.version} on ${corral.endpoint}`);

  say(`corral.sandboxes.create({ vault: '${vault}', policy: 'workstation', labels: { demo: 'yes' } })`);
  const sandbox = await corral.sandboxes.create({ vault, policy: 'workstation', labels: { demo: 'yes' } });
  console.log(`sandbox ${sandbox.id}: ${sandbox.state}, backend ${sandbox.backend}, working on its own fork ${sandbox.vault}`);

  say("sandbox.exec('ls src && wc -l src/*.js')");
  const ls = await sandbox.exec('ls src && wc -l src/*.js');
  process.stdout.write(ls.stdout);
  console.log(`exit ${ls.exitCode} in ${ls.durationMs} ms (policy: ${ls.decision?.action})`);

  say("sandbox.stream('for i in 1 2 3; do echo \"step $i\"; sleep 0.2; done')   (frames as they come)");
  for await (const frame of sandbox.stream('for i in 1 2 3; do echo "step $i"; sleep 0.2; done')) {
    if (frame.type === 'output') process.stdout.write(`  [${frame.stream} @${frame.offset}] ${frame.text}`);
    if (frame.type === 'exit') console.log(`  [exit] ${frame.exec.state}, code ${frame.exec.exitCode}`);
  }

  say("sandbox.exec('echo \"- [ ] reviewed by the SDK\" >> todo.txt; mkdir -p out; date -u +%F > out/stamp', { background: true })");
  const job = await sandbox.exec('echo "- [ ] reviewed by the SDK" >> todo.txt; mkdir -p out; date -u +%F > out/stamp', { background: true });
  const done = await job.wait();
  const changes = done.result?.changes;
  console.log(`background exec ${done.id}: ${done.state}, exit ${done.exitCode}`);
  console.log(`change summary: added ${changes?.added.map((c) => c.path).join(', ') || 'nothing'}; modified ${changes?.modified.map((c) => c.path).join(', ') || 'nothing'}; commit ${changes?.commit?.slice(0, 12) ?? 'none'}`);

  say("sandbox.files.readText('/todo.txt')");
  process.stdout.write(await sandbox.files.readText('/todo.txt'));

  say("sandbox.exec('cat /etc/shadow')   (the policy answers, the command never runs)");
  const denied = await sandbox.exec('cat /etc/shadow');
  console.log(`${denied.status}: ${denied.decision?.reason}`);

  say('sandbox.destroy()');
  const gone = await sandbox.destroy();
  console.log(`sandbox ${gone.id}: ${gone.state}; its fork is deleted, ${vault} is untouched`);
} finally {
  corral.close();
}

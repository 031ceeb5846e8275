// corral tag|untag|tags and corral meta get|set|delete|export|import.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { CorralError } from '../../protocol/errors.ts';
import { type CliContext, readStdin } from '../context.ts';
import { escapeControls, table } from '../output.ts';

/** Largest metadata document `meta import` reads. */
const MAX_IMPORT_BYTES = 64 * 1024 * 1024;

async function readDocument(source: string): Promise<unknown> {
  let data: Uint8Array;
  if (source === '-') data = await readStdin(MAX_IMPORT_BYTES, 'the metadata document');
  else {
    const st = statSync(source);
    if (!st.isFile()) throw new CorralError('INVALID_ARGUMENT', `${source} is not a regular file`, { file: source });
    if (st.size > MAX_IMPORT_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `${source} is over the ${MAX_IMPORT_BYTES / 1024 / 1024} MiB limit of a metadata document`, { file: source, size: st.size });
    data = readFileSync(source);
  }
  if (data.length > MAX_IMPORT_BYTES) throw new CorralError('PAYLOAD_TOO_LARGE', `the metadata document is over the ${MAX_IMPORT_BYTES / 1024 / 1024} MiB limit`, { size: data.length });
  try {
    return JSON.parse(Buffer.from(data).toString('utf8'));
  } catch (e) {
    throw new CorralError('INVALID_ARGUMENT', `the metadata document is not valid JSON: ${(e as Error).message} (nothing was changed)`, { file: source });
  }
}

export function registerTagCommands(program: Command, ctx: CliContext): void {
  program
    .command('tag [path] [tags...]')
    .description("add tags to a path of the head; with no tags, list the path's tags")
    .option('--find <tag>', 'list the paths that carry TAG')
    .addHelpText(
      'after',
      `
A tag is 1-64 characters without spaces, commas or NUL, not starting with '/'.
Tags follow their paths through mv, cp and rm, and are copied by a fork.

Examples:
  $ corral tag /notes/plan.md important draft
  $ corral tag /notes/plan.md
  $ corral tag --find important
  $ corral find / --tag important --type f`,
    )
    .action(
      ctx.action((path: string | undefined, tags: string[], opts: { find?: string }) => {
        const vault = ctx.vault();
        if (opts.find !== undefined) {
          if (path !== undefined) throw new CorralError('INVALID_ARGUMENT', "--find takes no path: use 'corral tag --find TAG', or 'corral find PATH --tag TAG' to look below a path");
          const r = ctx.corral.tags.find(vault, opts.find);
          ctx.out.result(r, (d) => d.paths.map(escapeControls));
          return;
        }
        if (path === undefined) throw new CorralError('INVALID_ARGUMENT', "give a path: 'corral tag PATH TAG...' adds tags, 'corral tag PATH' lists them, 'corral tags' lists all");
        if (tags.length === 0) {
          const r = ctx.corral.tags.list(vault, path);
          if (r.tags.length === 0) ctx.out.note(`${r.path} has no tags`);
          ctx.out.result(r, (d) => d.tags);
          return;
        }
        const r = ctx.corral.tags.add(vault, path, tags);
        ctx.out.result(r, (d) => (d.added.length ? `tagged ${d.path}: ${d.added.join(', ')}` : `${d.path} already has ${tags.join(', ')}`));
      }),
    );

  program
    .command('untag <path> <tags...>')
    .description('remove tags from a path (fails, changing nothing, when the path lacks one)')
    .addHelpText('after', '\nExamples:\n  $ corral untag /notes/plan.md draft\n  $ corral untag /notes/plan.md draft important --json')
    .action(
      ctx.action((path: string, tags: string[]) => {
        const r = ctx.corral.tags.remove(ctx.vault(), path, tags);
        ctx.out.result(r, (d) => `untagged ${d.path}: ${d.removed.join(', ')}`);
      }),
    );

  program
    .command('tags')
    .description('list every tag of the vault with the number of paths carrying it')
    .addHelpText('after', '\nExamples:\n  $ corral tags\n  $ corral tags --json')
    .action(
      ctx.action(() => {
        const tags = ctx.corral.tags.all(ctx.vault());
        ctx.out.result({ tags }, (d, c) =>
          d.tags.length === 0 ? "no tags: add one with 'corral tag PATH TAG'" : table([['TAG', 'COUNT'], ...d.tags.map((t) => [t.tag, String(t.count)])]).map((l, i) => (i === 0 ? c.dim(l) : l)),
        );
      }),
    );

  const meta = program
    .command('meta')
    .description('key/value metadata on paths: get, set, delete, export, import')
    .addHelpText(
      'after',
      `
Keys are 1-128 of A-Z a-z 0-9 _ - . : ; values are strings of up to 64 KiB.

Examples:
  $ corral meta set /data/train.csv source s3://bucket/train.csv
  $ corral meta get /data/train.csv
  $ corral meta export --output attrs.json
  $ corral meta import attrs.json --vault other`,
    );

  meta
    .command('get <path> [key]')
    .description('print all metadata of a path as key=value lines, or the value of one key')
    .addHelpText('after', '\nExamples:\n  $ corral meta get /data/train.csv\n  $ corral meta get /data/train.csv source')
    .action(
      ctx.action((path: string, key: string | undefined) => {
        const vault = ctx.vault();
        if (key !== undefined) {
          const r = ctx.corral.tags.metaGet(vault, path, key);
          ctx.out.result(r, (d) => d.value);
          return;
        }
        const r = ctx.corral.tags.metaAll(vault, path);
        ctx.out.result(r, (d) => Object.entries(d.meta).map(([k, v]) => `${k}=${v}`));
      }),
    );

  meta
    .command('set <path> <key> <value>')
    .description('set one metadata value on an existing path (replaces the old value)')
    .addHelpText('after', '\nExamples:\n  $ corral meta set /report.md status reviewed\n  $ corral meta set /report.md owner "Ada Lovelace" --json')
    .action(
      ctx.action((path: string, key: string, value: string) => {
        const r = ctx.corral.tags.metaSet(ctx.vault(), path, key, value);
        ctx.out.result(r, (d) => `set ${d.key} on ${d.path}${d.previous !== null ? ` (was ${JSON.stringify(d.previous.length > 60 ? d.previous.slice(0, 60) + '…' : d.previous)})` : ''}`);
      }),
    );

  meta
    .command('delete <path> <key>')
    .alias('rm')
    .description('delete one metadata key of a path (META_NOT_FOUND when it is not there)')
    .addHelpText('after', '\nExamples:\n  $ corral meta delete /report.md status')
    .action(
      ctx.action((path: string, key: string) => {
        const r = ctx.corral.tags.metaDelete(ctx.vault(), path, key);
        ctx.out.result(r, (d) => `deleted ${d.key} of ${d.path}`);
      }),
    );

  meta
    .command('export')
    .description('print every tag and metadata value of the vault as one JSON document ({"version":1,"vault":...,"paths":{...}})')
    .option('-o, --output <file>', 'write the document to a file of the host instead of stdout')
    .addHelpText('after', '\nExamples:\n  $ corral meta export > attrs.json\n  $ corral meta export --output attrs.json')
    .action(
      ctx.action((opts: { output?: string }) => {
        const doc = ctx.corral.tags.export(ctx.vault());
        const text = JSON.stringify(doc, null, 2) + '\n';
        if (opts.output === undefined) {
          ctx.out.bytes(new TextEncoder().encode(text));
          return;
        }
        writeFileSync(opts.output, text, { mode: 0o600 });
        ctx.out.result({ output: opts.output, vault: doc.vault, paths: Object.keys(doc.paths).length }, (d) => `wrote tags and metadata of ${d.paths} paths to ${d.output}`);
      }),
    );

  meta
    .command('import <file>')
    .description("merge a document of 'meta export' into the vault ('-' reads stdin); everything is checked first, so a bad document changes nothing")
    .option('--skip-missing', 'leave out paths that do not exist in the head instead of failing')
    .addHelpText('after', '\nExamples:\n  $ corral meta import attrs.json\n  $ corral meta export --vault a | corral meta import - --vault b --skip-missing')
    .action(
      ctx.action(async (file: string, opts: { skipMissing?: boolean }) => {
        const vault = ctx.vault();
        const doc = await readDocument(file);
        const r = ctx.corral.tags.import(vault, doc, { skipMissing: opts.skipMissing === true });
        for (const p of r.skipped.slice(0, 20)) ctx.out.note(`corral meta import: skipped ${p}: not in the head`);
        ctx.out.result(r, (d) => `imported ${d.paths} paths into ${d.vault}: ${d.tagsAdded} tags added, ${d.metaSet} values set${d.skipped.length ? `, ${d.skipped.length} missing paths skipped` : ''}`);
      }),
    );
}

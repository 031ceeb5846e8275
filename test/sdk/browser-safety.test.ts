// The SDK's root export must load in a browser: no module in its static import graph (type-only
// imports are erased, so they do not count) may import `node:*` or a package, nor use Node's globals.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import ts from 'typescript';
import { ROOT } from '../helpers.ts';

/** Bare packages the browser-safe graph may import at run time (none: zod stays type-only). */
const ALLOWED_PACKAGES: string[] = [];

/** The run-time module specifiers of a file: imports, re-exports and dynamic import() calls, minus type-only ones. */
function runtimeSpecifiers(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      // `import type {…}` is erased; `import { type A }` is not (verbatimModuleSyntax keeps the import).
      if (!node.importClause?.isTypeOnly) out.push(node.moduleSpecifier.text);
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      if (!node.isTypeOnly) out.push(node.moduleSpecifier.text);
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference) && ts.isStringLiteral(node.moduleReference.expression)) {
      out.push(node.moduleReference.expression.text);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      const arg = node.arguments[0];
      out.push(arg && ts.isStringLiteral(arg) ? arg.text : '<computed import()>');
    } else if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'require') {
      out.push('<require()>');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** Identifiers of Node's own globals used as values (a browser has none of them). */
function nodeGlobals(file: string): string[] {
  const source = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found = new Set<string>();
  const banned = new Set(['Buffer', 'process', 'require', '__dirname', '__filename', 'global', 'setImmediate']);
  const visit = (node: ts.Node): void => {
    if (ts.isTypeNode(node)) return;
    if (ts.isIdentifier(node) && banned.has(node.text)) {
      const parent = node.parent;
      // A property name (x.process, { process: … }) is not the global.
      const isName = (ts.isPropertyAccessExpression(parent) && parent.name === node) || (ts.isPropertyAssignment(parent) && parent.name === node) || ts.isPropertySignature(parent);
      if (!isName) found.add(node.text);
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return [...found];
}

function walk(entry: string): { files: string[]; problems: string[] } {
  const seen = new Set<string>();
  const problems: string[] = [];
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const shown = relative(ROOT, file);
    for (const spec of runtimeSpecifiers(file)) {
      if (spec.startsWith('.')) queue.push(resolve(dirname(file), spec));
      else if (spec.startsWith('node:') || !ALLOWED_PACKAGES.includes(spec)) problems.push(`${shown} imports ${spec}`);
    }
    for (const name of nodeGlobals(file)) problems.push(`${shown} uses the Node global ${name}`);
  }
  return { files: [...seen].map((f) => relative(ROOT, f)).sort(), problems };
}

test('the SDK root (src/sdk/index.ts) imports no node:* module and no package at run time, and uses no Node global', () => {
  const { files, problems } = walk(resolve(ROOT, 'src/sdk/index.ts'));
  assert.deepEqual(problems, []);
  // The walk really followed the graph: the root's modules are in it, the Node subpath and zod's schemas are not.
  for (const f of ['src/sdk/index.ts', 'src/sdk/api-client.ts', 'src/sdk/sse-reader.ts', 'src/sdk/sandbox-handle.ts', 'src/sdk/exec-handle.ts', 'src/sdk/file-client.ts']) assert.ok(files.includes(f), `${f} is in the graph`);
  for (const f of ['src/sdk/node.ts', 'src/sdk/node-transport.ts', 'src/protocol/api-schemas.ts']) assert.ok(!files.includes(f), `${f} is not in the graph`);
});

test('the checker catches what it must: the Node subpath fails it', () => {
  const { problems } = walk(resolve(ROOT, 'src/sdk/node.ts'));
  assert.ok(problems.some((p) => p.includes('imports node:http')), problems.join('\n'));
  assert.ok(problems.some((p) => p.includes('uses the Node global process')), problems.join('\n'));
});

test('package.json exports the root and the node subpath, with types', async () => {
  const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, { types: string; default: string }> };
  assert.deepEqual(pkg.exports['.'], { types: './src/sdk/index.ts', default: './src/sdk/index.ts' });
  assert.deepEqual(pkg.exports['./node'], { types: './src/sdk/node.ts', default: './src/sdk/node.ts' });
  // Self-reference by the package's name resolves through the exports.
  const root = await import('corral');
  const node = await import('corral/node');
  assert.equal(typeof root.Corral.connect, 'function');
  assert.equal(node.Corral, root.Corral, 'one class, whichever entry point');
  assert.equal(typeof node.connect, 'function');
});

// The SDK's documented spec must be exactly the API's schema type: a field added to one and not the other fails to compile.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Assert<T extends true> = T;
export type SpecMatchesSchema = Assert<Equal<import('../../src/sdk/index.ts').SandboxSpec, import('../../src/protocol/api-schemas.ts').SandboxCreate>>;
export type LimitsMatchSchema = Assert<Equal<import('../../src/sdk/index.ts').SandboxLimits, NonNullable<import('../../src/protocol/api-schemas.ts').SandboxCreate['limits']>>>;

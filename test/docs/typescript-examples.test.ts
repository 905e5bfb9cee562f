// Every ```ts block of README.md and docs/ compiles under strict tsc, as
// written, against the package `npm pack` makes (its exports and types), not
// against the sources: what a user who installed it would type.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { docExamples } from '../support/doc-examples.js';
import { projectRoot } from '../support/project-root.js';

const run = promisify(execFile);
const root = projectRoot();

/**
 * The placeholders examples use for the reader's own code and values, declared
 * once here: an example that uses any other undeclared name fails.
 */
const PLACEHOLDERS = `
declare function handle(stream: string, token: number, row: unknown): void;
declare function advanceTo(stream: string, token: number): void;
declare const WRITER_TOKEN: string;
declare const row1: unknown;
declare const row2: unknown;
`;

test('every TypeScript example in the docs compiles (strict) against the packed package', { timeout: 180_000 }, async (t) => {
  const examples = docExamples('ts');
  assert.ok(examples.length >= 4, `found ${examples.length} examples`);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rg-doc-examples-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // The package as a user installs it: npm pack (no scripts: dist/ is the suite's fresh build), unpacked.
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, timeout: 120_000 });
  const [{ filename }] = JSON.parse(stdout) as { filename: string }[];
  const modules = path.join(dir, 'node_modules');
  const installed = path.join(modules, 'replication-gateway');
  mkdirSync(installed, { recursive: true });
  await run('tar', ['xzf', path.join(dir, filename), '-C', installed, '--strip-components', '1']);
  // Its runtime dependencies and @types/node, from this checkout's install.
  const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  for (const dep of [...Object.keys(pkg.dependencies), '@types']) {
    const target = path.join(modules, dep);
    mkdirSync(path.dirname(target), { recursive: true });
    symlinkSync(path.join(root, 'node_modules', dep), target);
  }

  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'doc-examples', type: 'module', private: true }));
  writeFileSync(path.join(dir, 'placeholders.d.ts'), PLACEHOLDERS);
  const files = examples.map((e, i) => {
    const name = `example-${i}.ts`;
    // `export {}` makes each a module (top-level await) without changing what it says.
    writeFileSync(path.join(dir, name), `${e.code}\nexport {};\n`);
    return name;
  });
  writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', strict: true, noEmit: true, types: ['node'], skipLibCheck: false },
      files: ['placeholders.d.ts', ...files],
    }),
  );
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await run(process.execPath, [tsc, '-p', dir], { cwd: dir, timeout: 120_000 }).then(
    () => '',
    (err: { stdout?: string }) => err.stdout ?? String(err),
  );
  const located = result.replace(/example-(\d+)\.ts\((\d+),(\d+)\)/g, (_m, i: string, line: string, col: string) => `${examples[Number(i)]!.where} +${line}:${col}`);
  assert.equal(located, '', 'tsc reports nothing for the docs examples');
});

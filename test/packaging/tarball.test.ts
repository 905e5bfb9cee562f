// What `npm pack` ships is what a user runs: the exports resolve, every source
// map's sources are in the package, nothing shipped needs a dev dependency,
// and the licence and changelog come along.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { projectRoot } from '../support/project-root.js';

const root = projectRoot();
const pkg = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, string | Record<string, string>>;
  bin: Record<string, string>;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** The tarball's file list, without building (--ignore-scripts: `prepare` would empty dist/ under the running suite). */
async function packedFiles(): Promise<Set<string>> {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, timeout: 60_000 });
  const [report] = JSON.parse(stdout) as { files: { path: string }[] }[];
  return new Set(report!.files.map((f) => f.path));
}

const files = await packedFiles();

test('ships the licence, the changelog, the readme and the command', () => {
  for (const f of ['LICENSE', 'CHANGELOG.md', 'README.md', 'package.json', ...Object.values(pkg.bin)]) {
    assert.ok(files.has(f.replace(/^\.\//, '')), `${f} is in the package`);
  }
});

test('every export target is in the package', () => {
  for (const [subpath, target] of Object.entries(pkg.exports)) {
    const targets = typeof target === 'string' ? [target] : Object.values(target);
    for (const t of targets) assert.ok(files.has(t.replace(/^\.\//, '')), `${subpath} -> ${t} is shipped`);
  }
});

test("every shipped source map's sources are shipped too", () => {
  const maps = [...files].filter((f) => f.endsWith('.map'));
  assert.ok(maps.length > 10, 'source maps are shipped');
  for (const map of maps) {
    const { sources } = JSON.parse(readFileSync(path.join(root, map), 'utf8')) as { sources: string[] };
    for (const source of sources) {
      const shipped = path.posix.normalize(path.posix.join(path.posix.dirname(map), source));
      assert.ok(files.has(shipped), `${map} points at ${shipped}, which is shipped`);
    }
  }
});

test('no shipped module imports a dev dependency', () => {
  const dev = Object.keys(pkg.devDependencies);
  for (const f of [...files].filter((f) => f.endsWith('.js') && f !== 'dist/static/client.js')) {
    const text = readFileSync(path.join(root, f), 'utf8');
    for (const name of dev) {
      const imported = new RegExp(`(?:from\\s*|import\\s*\\(\\s*|require\\(\\s*)['"]${name.replace('/', '\\/')}(?:/[^'"]*)?['"]`).test(text);
      assert.ok(!imported, `${f} imports the dev dependency ${name}`);
    }
  }
});

test('every runtime dependency is imported by something shipped (none only for the bench)', () => {
  const shipped = [...files].filter((f) => f.startsWith('dist/src/') && f.endsWith('.js')).map((f) => readFileSync(path.join(root, f), 'utf8'));
  for (const name of Object.keys(pkg.dependencies)) {
    const imported = new RegExp(`(?:from\\s*|import\\s*\\(\\s*)['"]${name.replace('/', '\\/')}(?:/[^'"]*)?['"]`);
    assert.ok(shipped.some((text) => imported.test(text)), `${name} is a runtime dependency that no shipped module imports`);
  }
});


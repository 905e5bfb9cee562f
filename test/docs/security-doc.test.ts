// docs/security.md's table of bad input: at least 40 classes, and every test
// file a row names exists, so the table cannot point at a test that is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

test('docs/security.md lists at least 40 classes of bad input, each with a test file that exists', () => {
  const doc = readFileSync(path.join(ROOT, 'docs/security.md'), 'utf8');
  const rows = doc.split('\n').filter((l) => /^\| \d+ \|/.test(l));
  assert.ok(rows.length >= 40, `${rows.length} rows`);
  const named = new Set<string>();
  for (const row of rows) {
    const files = [...row.matchAll(/\b((?:test\/)?[\w/-]+\.test\.ts)\b/g)].map((m) => m[1]!);
    assert.ok(files.length > 0 || /\bsame\b/.test(row), `row names no test: ${row.slice(0, 80)}`);
    for (const f of files) {
      // A bare file name repeats the directory of the row that named it in full.
      const full = f.startsWith('test/') ? f : [...named].find((n) => n.endsWith(`/${f}`)) ?? `test/bindings/${f}`;
      assert.ok(existsSync(path.join(ROOT, full)), `${full} (from: ${row.slice(0, 60)}...)`);
      named.add(full);
    }
  }
});

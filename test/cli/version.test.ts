// `replication-gateway --version` and `replication-gateway version` print the package's version.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { packageVersion, projectRoot } from '../support/project-root.js';

const BIN = path.join(projectRoot(), 'bin', 'replication-gateway.js');

for (const arg of ['--version', 'version']) {
  test(`${arg} prints the package version and exits 0`, async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, arg], { timeout: 10_000 });
    assert.equal(stdout, `replication-gateway ${packageVersion()}\n`);
  });
}

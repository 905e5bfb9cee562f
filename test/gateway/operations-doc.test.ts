// docs/operations.md must name every option, its variable and every metric
// series the gateway exports, so the doc cannot fall behind the code.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pino } from 'pino';
import { describe, it } from 'node:test';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { OPTIONS } from '../../src/gateway/options.js';
import { projectRoot } from '../support/project-root.js';

const doc = readFileSync(path.join(projectRoot(), 'docs', 'operations.md'), 'utf8');

describe('docs/operations.md', () => {
  it('names every option with its flag, environment variable and config key', () => {
    for (const o of OPTIONS) {
      assert.ok(doc.includes(`\`${o.flag} `) || doc.includes(`\`${o.flag}\``), `${o.flag} documented`);
      assert.ok(doc.includes(`\`${o.env}\``), `${o.env} documented`);
      if (o.key !== 'config') assert.ok(doc.includes(`\`${o.key}\``), `config key ${o.key} documented`);
    }
  });

  it('names, under SIGHUP, every setting that a reload applies live', () => {
    const sighup = doc.slice(doc.indexOf('- **SIGHUP**'), doc.indexOf('## ', doc.indexOf('- **SIGHUP**')));
    for (const o of OPTIONS.filter((o) => o.live)) assert.ok(sighup.includes(`\`${o.flag}\``), `${o.flag} listed as live`);
  });

  it('names every replication_gateway_ series, relay mode included', async () => {
    const { config } = loadConfig({ argv: ['--upstream', '127.0.0.1:9', '--http', 'off'], env: {} });
    const gateway = await Gateway.open(config, pino({ level: 'silent' }));
    const names = gateway.metrics.registry
      .getMetricsAsArray()
      .map((m) => m.name)
      .filter((n) => n.startsWith('replication_gateway_'));
    assert.ok(names.length > 30);
    for (const name of names) assert.ok(doc.includes(`\`${name}\``), `${name} documented`);
    await gateway.stop(1_000);
  });
});

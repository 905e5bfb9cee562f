// `replication-gateway serve` settings as a child process: flags beat RG_*
// variables, which beat the --config file, which beats the defaults; a bad
// value stops start-up with one line and exit code 2.

import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { engineAvailability } from '../../src/bindings/engine-choice.js';
import { httpGet, LineClient, killAllGateways, runGateway, startGateway } from './support/gateway-process.js';

let dir: string;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'rg-config-'));
});

after(async () => {
  killAllGateways();
  await rm(dir, { recursive: true, force: true });
});

async function configFile(name: string, content: unknown): Promise<string> {
  const file = path.join(dir, name);
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

/** SERVER name and the streams a `REPLICATE ALL NOW` reports. */
async function greeting(port: number, streams: number): Promise<{ server: string; positions: string[] }> {
  const c = await LineClient.connect(port);
  try {
    const server = await c.waitFor((l) => l.startsWith('SERVER '));
    c.send('REPLICATE ALL NOW');
    const positions = await c.waitForCount((l) => l.startsWith('POSITION '), streams);
    return { server, positions };
  } finally {
    c.close();
  }
}

describe('serve settings', () => {
  it('takes flags over RG_ variables over the config file over the defaults', async () => {
    const file = await configFile('layers.json', {
      serverName: 'file.example',
      streams: ['f1', 'f2'],
      http: null,
      maxConnections: 3,
    });
    const readyFile = path.join(dir, 'layers-ready.json');
    const gw = await startGateway(['--listen', '127.0.0.1:0', '--ready-file', readyFile, '--config', file, '--server-name', 'flag.example'], {
      bare: true,
      readyFile,
      env: { RG_SERVER_NAME: 'env.example', RG_STREAMS: 'e1,e2,e3' },
    });
    try {
      // Flag over env and file; env over file; file over the default (--http off).
      assert.equal(gw.http, null);
      const { server, positions } = await greeting(gw.tcp, 3);
      assert.equal(server, 'SERVER flag.example');
      assert.deepEqual(positions, ['POSITION e1 0', 'POSITION e2 0', 'POSITION e3 0']);
      const listening = gw.logs.all().find((e) => e['msg'] === 'listening')!;
      assert.deepEqual(listening['streams'], ['e1', 'e2', 'e3']);
      assert.equal(listening['http'], null);
      // maxConnections 3 from the file (nothing overrides it): the fourth connection is refused.
      const clients = await Promise.all([1, 2, 3, 4].map(() => LineClient.connect(gw.tcp)));
      const refused = await Promise.race(clients.map((c) => c.waitFor((l) => l.startsWith('ERROR too many connections'), 5_000)));
      assert.match(refused, /limit 3/);
      for (const c of clients) c.close();
    } finally {
      await gw.stop();
    }
  });

  it('reads the config file named by RG_CONFIG and falls back to the defaults', async () => {
    const file = await configFile('env-config.json', { streams: 'only' });
    const gw = await startGateway([], { env: { RG_CONFIG: file } });
    try {
      const { server, positions } = await greeting(gw.tcp, 1);
      assert.equal(server, 'SERVER localhost'); // the default name
      assert.deepEqual(positions, ['POSITION only 0']);
      assert.equal(typeof gw.http, 'number');
    } finally {
      await gw.stop();
    }
  });

  const BAD: { name: string; args?: string[]; env?: Record<string, string>; file?: unknown; expect: RegExp[] }[] = [
    { name: 'a size that is not one', args: ['--max-queue-bytes', 'lots'], expect: [/--max-queue-bytes/, /'lots'/, /expected a whole number of bytes/] },
    { name: 'a count of zero', args: ['--max-connections=0'], expect: [/--max-connections/, /'0'/, /from 1 to/] },
    { name: 'an address without a port, from the environment', env: { RG_LISTEN: 'nowhere' }, expect: [/--listen \(from RG_LISTEN\)/, /'nowhere'/, /HOST:PORT/] },
    { name: 'a negative number in the config file', file: { retentionRows: -5 }, expect: [/--retention-rows \(from "retentionRows" in .*bad-\d\.json\)/, /'-5'/, /whole number of rows/] },
    { name: 'an unknown log level', args: ['--log-level', 'loud'], expect: [/--log-level/, /'loud'/, /one of fatal, error, warn, info, debug, trace, silent/] },
    { name: 'ALL as a stream name', args: ['--streams', 'events,ALL'], expect: [/--streams/, /'events,ALL'/, /not ALL/] },
    { name: 'port 0 for the upstream', args: ['--upstream', '127.0.0.1:0'], expect: [/--upstream/, /'127\.0\.0\.1:0'/, /port from 1 to 65535/] },
    { name: 'an unknown option', args: ['--frobnicate', '1'], expect: [/unknown option --frobnicate/] },
    { name: 'a writer token in relay mode', args: ['--upstream', '127.0.0.1:9', '--writer-token', 'w'], expect: [/--writer-token/, /--upstream 127\.0\.0\.1:9/, /expected no --writer-token/] },
    { name: 'an unknown setting in the config file', file: { listen: '127.0.0.1:0', colour: 'blue' }, expect: [/unknown setting 'colour'/, /expected one of listen, http/] },
    { name: 'a config file that is not JSON', file: '{ nope', expect: [/--config '.*bad-\d+\.json': not JSON/] },
    { name: 'an unknown engine', args: ['--ws-engine', 'fast'], expect: [/--ws-engine/, /'fast'/, /expected one of auto, uws, ws/] },
  ];

  it('stops on a bad value with one line naming the option, the value and what is allowed, exit code 2', async () => {
    const results = await Promise.all(
      BAD.map(async (c, i) => {
        const args = [...(c.args ?? [])];
        if (c.file !== undefined) args.push('--config', await configFile(`bad-${i}.json`, c.file));
        const listen = c.env?.['RG_LISTEN'] === undefined ? ['--listen', '127.0.0.1:0'] : [];
        return { c, r: await runGateway([...listen, '--http', 'off', ...args], c.env ?? {}) };
      }),
    );
    for (const { c, r } of results) {
      assert.equal(r.code, 2, `${c.name}: exit code (stderr: ${r.stderr})`);
      assert.equal(r.stdout, '', `${c.name}: nothing on stdout`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, `${c.name}: one line, got ${JSON.stringify(r.stderr)}`);
      assert.match(lines[0]!, /^replication-gateway serve: /, c.name);
      for (const re of c.expect) assert.match(lines[0]!, re, c.name);
    }
  });

  it('lists every option, its variable and its default in --help', async () => {
    const r = await runGateway(['--help']);
    assert.equal(r.code, 0);
    for (const flag of ['--listen', '--http', '--server-name', '--streams', '--writer-token', '--subscriber-token', '--retention-rows',
      '--retention-bytes', '--max-queue-commands', '--max-queue-bytes', '--max-line-bytes', '--max-connections', '--upstream',
      '--upstream-name', '--config', '--log-level', '--ready-file', '--ws-engine']) {
      assert.ok(r.stdout.includes(`${flag} `), `--help mentions ${flag}`);
    }
    assert.match(r.stdout, /env RG_MAX_QUEUE_BYTES/);
    assert.match(r.stdout, /default 127\.0\.0\.1:9092/);
  });
});

describe('serve --ws-engine', () => {
  it('names the engine serving --http and why in one log line, and serves on it', async () => {
    const onAuto = engineAvailability().uws === true ? 'uws' : 'ws';
    const cases: [string[], string, RegExp][] = [
      [[], onAuto, /^auto: /],
      [['--ws-engine', 'ws'], 'ws', /^asked for \(--ws-engine ws\)$/],
    ];
    for (const [args, name, reason] of cases) {
      const gw = await startGateway(args);
      try {
        const line = await gw.logs.waitFor((e) => e['msg'] === `HTTP and WebSocket engine: ${name}`, 5_000);
        assert.equal(line['wsEngine'], name);
        assert.match(String(line['reason']), reason);
        assert.equal(gw.logs.all().filter((e) => String(e['msg']).startsWith('HTTP and WebSocket engine')).length, 1);
        assert.equal((await httpGet(gw.http!, '/healthz')).status, 200);
      } finally {
        await gw.stop();
      }
    }
  });

  it('stops with exit code 2 and one line saying why and what to use when uws cannot run', async () => {
    // Its JS fallback, forced: what the package gives on a Node it has no build for.
    const r = await runGateway(['--listen', '127.0.0.1:0', '--http', '127.0.0.1:0', '--ws-engine', 'uws'], { UWS_USE_FALLBACK: '1' });
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, JSON.stringify(r.stderr));
    assert.match(lines[0]!, /^replication-gateway serve: --ws-engine uws: UWS_USE_FALLBACK is set, .* fails on the first HTTP request; use --ws-engine ws \(or auto, which picks ws here\)$/);
  });
});

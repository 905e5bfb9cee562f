import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/gateway/config.js';
import { OPTIONS } from '../../src/gateway/options.js';

const files = (content: Record<string, string>) => (p: string): string => {
  const text = content[p];
  if (text === undefined) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
  return text;
};

describe('loadConfig', () => {
  it('has a default for every option that has one, matching the server library', () => {
    const { config } = loadConfig({ argv: [], env: {} });
    assert.deepEqual(config.listen, { host: '127.0.0.1', port: 9092 });
    assert.deepEqual(config.http, { host: '127.0.0.1', port: 9093 });
    assert.equal(config.serverName, null);
    assert.equal(config.streams.length, 15);
    assert.equal(config.retentionRows, 1_000_000);
    assert.equal(config.retentionBytes, 512 * 1024 * 1024);
    assert.equal(config.maxQueueCommands, 10_000);
    assert.equal(config.maxQueueBytes, 64 * 1024 * 1024);
    assert.equal(config.maxStallMs, 10_000);
    assert.equal(config.maxLineBytes, 1024 * 1024);
    assert.equal(config.maxConnections, 100_000);
    assert.equal(config.upstream, null);
    assert.equal(config.logLevel, 'info');
  });

  it('layers flags over env over file over defaults, per option', () => {
    const { config, explicit } = loadConfig({
      argv: ['--config', 'c.json', '--max-queue-commands', '7'],
      env: { RG_MAX_QUEUE_COMMANDS: '8', RG_MAX_QUEUE_BYTES: '2MiB', RG_LOG_LEVEL: '' },
      readFile: files({ 'c.json': JSON.stringify({ maxQueueCommands: 9, maxQueueBytes: 1, maxConnections: 5, streams: ['a', 'b'] }) }),
    });
    assert.equal(config.maxQueueCommands, 7);
    assert.equal(config.maxQueueBytes, 2 * 1024 * 1024);
    assert.equal(config.maxConnections, 5);
    assert.deepEqual(config.streams, ['a', 'b']);
    assert.equal(config.logLevel, 'info', 'an empty variable is unset');
    assert.ok(explicit.has('maxConnections') && !explicit.has('logLevel'));
  });

  it('accepts --flag=value, IPv6 addresses, off and size suffixes', () => {
    const { config } = loadConfig({ argv: ['--listen=[::1]:0', '--http', 'off', '--retention-bytes', '1_024KiB', '--upstream', 'hs:9092'], env: {} });
    assert.deepEqual(config.listen, { host: '::1', port: 0 });
    assert.equal(config.http, null);
    assert.equal(config.retentionBytes, 1024 * 1024);
    assert.deepEqual(config.upstream, { host: 'hs', port: 9092 });
  });

  it('following a Synapse deployment, declares no stream unless --streams says, and read lists may name the streams it will hear', () => {
    const synapse = ['--synapse-redis', 'redis://127.0.0.1:6379', '--synapse-server-name', 'example.com'];
    const { config } = loadConfig({ argv: [...synapse, '--subscriber-token', 's:events,typing'], env: {} });
    assert.deepEqual(config.streams, []);
    assert.deepEqual(config.subscriberToken, [{ secret: 's', role: 'subscriber', streams: ['events', 'typing'] }]);
    assert.deepEqual(loadConfig({ argv: [...synapse, '--streams', 'mine'], env: {} }).config.streams, ['mine']);
  });

  const bad: [string, Parameters<typeof loadConfig>[0], RegExp][] = [
    ['a bad flag value', { argv: ['--max-line-bytes', '12'], env: {} }, /^invalid --max-line-bytes: '12'; expected a whole number of bytes from 64/],
    ['a bad variable', { argv: [], env: { RG_HTTP: 'on' } }, /^invalid --http \(from RG_HTTP\): 'on'; expected HOST:PORT .*, or off$/],
    ['a bad file value', { argv: ['--config', 'x.json'], env: {}, readFile: files({ 'x.json': '{"streams": "a,,b"}' }) }, /^invalid --streams \(from "streams" in x\.json\): 'a,,b'/],
    ['a missing file', { argv: ['--config', 'nope.json'], env: {}, readFile: files({}) }, /^--config 'nope\.json': cannot read it \(ENOENT\)/],
    ['a flag without its value', { argv: ['--listen'], env: {} }, /^--listen needs a value: HOST:PORT$/],
    ['a positional argument', { argv: ['now'], env: {} }, /^unexpected argument 'now'/],
    ['upstream settings without --upstream', { argv: ['--upstream-name', 'x'], env: {} }, /^--upstream-name is set but --upstream is not/],
    ['the same token twice', { argv: ['--writer-token', 't', '--subscriber-token', 't'], env: {} }, /equals --writer-token/],
    ['one subscriber token twice', { argv: ['--subscriber-token', 't:events', '--subscriber-token', 't'], env: {} }, /^two --subscriber-token values have the same token/],
    ['a token listing an undeclared stream', { argv: ['--streams', 'events', '--writer-token', 'w:evnets'], env: {} }, /^--writer-token lists stream 'evnets', which is not declared/],
    ['a bad token in a file list', { argv: ['--config', 't.json'], env: {}, readFile: files({ 't.json': '{"subscriberToken": ["ok", ":events"]}' }) }, /^invalid --subscriber-token \(from "subscriberToken" in t\.json\): ':events'; expected TOKEN, TOKEN:stream,stream/],
    ['http on the replication port', { argv: ['--listen', '127.0.0.1:7000', '--http', '127.0.0.1:7000'], env: {} }, /is the --listen address/],
  ];
  for (const [name, sources, message] of bad) {
    it(`refuses ${name} in one line`, () => {
      assert.throws(
        () => loadConfig(sources),
        (err: unknown) => err instanceof ConfigError && message.test(err.message) && !err.message.includes('\n'),
      );
    });
  }

  it('takes --writer-token and --subscriber-token several times: from flags, as words of one variable, or as a file list', () => {
    const fromFlags = loadConfig({
      argv: ['--writer-token', 'm', '--writer-token', 'w:events,+page', '--subscriber-token', 'a', '--subscriber-token', 'b:typing'],
      env: { RG_SUBSCRIBER_TOKEN: 'ignored' },
    }).config;
    assert.deepEqual(fromFlags.writerToken, [
      { secret: 'm', role: 'writer' },
      { secret: 'w', role: 'writer', streams: ['events'], fromPages: true },
    ]);
    assert.deepEqual(fromFlags.subscriberToken, [
      { secret: 'a', role: 'subscriber' },
      { secret: 'b', role: 'subscriber', streams: ['typing'] },
    ], 'flags win over the variable, as a whole');
    const fromEnv = loadConfig({ argv: [], env: { RG_SUBSCRIBER_TOKEN: ' a  b:events,typing ' } }).config;
    assert.deepEqual(fromEnv.subscriberToken.map((c) => [c.secret, c.streams]), [['a', undefined], ['b', ['events', 'typing']]]);
    const fromFile = loadConfig({
      argv: ['--config', 'c.json'],
      env: {},
      readFile: files({ 'c.json': JSON.stringify({ subscriberToken: ['a', 'b:events,typing'], writerToken: 'm:caches' }) }),
    }).config;
    assert.deepEqual(fromFile.subscriberToken.map((c) => [c.secret, c.streams]), [['a', undefined], ['b', ['events', 'typing']]]);
    assert.deepEqual(fromFile.writerToken, [{ secret: 'm', role: 'writer', streams: ['caches'] }]);
    assert.deepEqual(loadConfig({ argv: [], env: {} }).config.subscriberToken, [], 'none by default');
  });

  it('names every option\'s RG_ variable after its flag', () => {
    for (const o of OPTIONS) assert.equal(o.env, `RG_${o.flag.slice(2).replace(/-/g, '_').toUpperCase()}`);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { LineClient, parseMetrics } from '../e2e/support/gateway-process.js';

describe('the gateway metrics, over TCP on 127.0.0.1', () => {
  const start = async (argv: string[]): Promise<{ gateway: Gateway; port: number }> => {
    const { config } = loadConfig({ argv: ['--listen', '127.0.0.1:0', '--http', 'off', '--streams', 'events,typing', ...argv], env: {} });
    const gateway = await Gateway.open(config, pino({ level: 'silent' }));
    const addresses = await gateway.start();
    return { gateway, port: addresses!.tcp.port };
  };
  const scrape = async (gateway: Gateway): Promise<Map<string, number>> => parseMetrics(await gateway.metrics.text());

  it('counts bytes received by transport across a closed connection, subscribers per stream, and each queue', async (t) => {
    const { gateway, port } = await start(['--writer-token', 'w', '--max-queue-bytes', String(256 * 1024 * 1024), '--max-queue-commands', '10000000']);
    t.after(() => gateway.stop(2_000));
    const first = await LineClient.connect(port);
    const firstLines = 'NAME first\nREPLICATE events NOW\n';
    first.socket.write(firstLines);
    await first.waitFor((l) => l.startsWith('POSITION events'));
    first.close();
    await first.closed;

    // A worker that stops reading: its queue fills while the writer's rows come.
    const stuck = await LineClient.connect(port);
    const stuckLines = 'NAME stuck\nREPLICATE events NOW\nREPLICATE typing NOW\n';
    stuck.socket.write(stuckLines);
    await stuck.waitForCount((l) => l.startsWith('POSITION'), 2);
    stuck.socket.pause();
    const writer = await LineClient.connect(port);
    t.after(() => {
      writer.close();
      stuck.close();
    });
    writer.send('AUTH w');
    const filler = 'x'.repeat(64 * 1024);
    let m = await scrape(gateway);
    const queued = (): number => m.get(`replication_gateway_connection_queued_bytes{connection="2",name="stuck",transport="tcp"}`) ?? 0;
    for (let token = 1; token <= 2000 && queued() === 0; token++) {
      writer.send(`RDATA events ${token} ["${filler}"]`);
      if (token % 16 === 0) {
        await new Promise((r) => setTimeout(r, 5));
        m = await scrape(gateway);
      }
    }
    assert.ok(queued() > 0, 'the stuck worker has bytes queued');
    assert.ok(m.get(`replication_gateway_connection_queued_commands{connection="2",name="stuck",transport="tcp"}`)! > 0);
    assert.equal(m.get('replication_gateway_stream_subscribers{stream="events"}'), 1);
    assert.equal(m.get('replication_gateway_stream_subscribers{stream="typing"}'), 1);

    writer.close();
    await writer.closed;
    m = await scrape(gateway);
    const writerBytes = await waitForReceived(gateway, Buffer.byteLength(firstLines) + Buffer.byteLength(stuckLines));
    assert.ok(writerBytes > 64 * 1024, `${writerBytes} bytes from the writer counted`);
    assert.equal(m.get('replication_gateway_outbound_queue_bytes'), queued());
  });

  it('counts exactly the commands and bytes each connection received, live, caught up and cut, closed or open', async (t) => {
    const { gateway, port } = await start(['--writer-token', 'w']);
    t.after(() => gateway.stop(2_000));
    const writer = await LineClient.connect(port);
    t.after(() => writer.close());
    writer.send('AUTH w');
    for (let token = 1; token <= 3; token++) writer.send(`RDATA events ${token} ["r${token}"]`);
    writer.send('RDATA events batch ["b1"]');
    writer.send('RDATA events 4 ["b2"]');
    const live = await LineClient.connect(port);
    t.after(() => live.close());
    live.send('REPLICATE events NOW');
    await live.waitFor((l) => l.startsWith('POSITION events'));
    // A catch-up of all five rows, then one live row, then a cut for an unknown command.
    const late = await LineClient.connect(port);
    late.send('REPLICATE events 0');
    await late.waitFor((l) => l === 'POSITION events 4');
    writer.send('RDATA events 5 ["r5"]');
    await late.waitFor((l) => l.startsWith('RDATA events 5'));
    await live.waitFor((l) => l.startsWith('RDATA events 5'));
    late.send('BOGUS');
    await late.closed;
    const received = (c: LineClient): { bytes: number; by: Map<string, number> } => {
      const by = new Map<string, number>();
      for (const l of c.lines) by.set(l.split(' ')[0]!, (by.get(l.split(' ')[0]!) ?? 0) + 1);
      return { bytes: c.lines.reduce((n, l) => n + Buffer.byteLength(l) + 1, 0), by };
    };
    const all = [received(writer), received(live), received(late)];
    const m = await scrape(gateway);
    for (const command of ['SERVER', 'PING', 'POSITION', 'RDATA', 'ERROR']) {
      const expected = all.reduce((n, r) => n + (r.by.get(command) ?? 0), 0);
      assert.equal(m.get(`replication_gateway_commands_out_total{command="${command}"}`) ?? 0, expected, command);
    }
    assert.ok(m.get('replication_gateway_commands_out_total{command="RDATA"}')! >= 6, 'the late subscriber had five rows caught up and one live');
    assert.equal(m.get('replication_gateway_sent_bytes_total{transport="tcp"}'), all.reduce((n, r) => n + r.bytes, 0));
  });

  it('has no relay last-received sample before the upstream sent anything (no -1)', async () => {
    const { config } = loadConfig({ argv: ['--upstream', '127.0.0.1:9', '--http', 'off'], env: {} });
    const gateway = await Gateway.open(config, pino({ level: 'silent' }));
    const text = await gateway.metrics.text();
    assert.ok(text.includes('# TYPE replication_gateway_relay_upstream_last_received_age_seconds gauge'));
    assert.ok(!/^replication_gateway_relay_upstream_last_received_age_seconds /m.test(text), text);
    assert.ok(!/ -1$/m.test(text));
    await gateway.stop(1_000);
  });
});

/** Waits (bounded) until the TCP received bytes are past `atLeast`; returns the writer's share. */
async function waitForReceived(gateway: Gateway, others: number): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const m = parseMetrics(await gateway.metrics.text());
    const total = m.get('replication_gateway_received_bytes_total{transport="tcp"}') ?? 0;
    if (total > others) return total - others;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('received_bytes_total never counted the writer');
}

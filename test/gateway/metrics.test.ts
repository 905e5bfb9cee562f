import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/gateway/config.js';
import { Gateway } from '../../src/gateway/gateway.js';
import { classifyLines } from '../../src/gateway/metrics.js';
import { LineClient, parseMetrics } from '../e2e/support/gateway-process.js';

describe('classifyLines', () => {
  it('counts the commands in a buffer of lines by name', () => {
    const counts = new Float64Array(16);
    classifyLines(
      Buffer.from('SERVER hs\nPING 1\nRDATA e batch []\nRDATA e 1 []\nPOSITION e 1\nERROR x\nSYNC 1\nUSER_SYNC u start 1\nUSER_IP u []\nREMOVE_PUSHER a b c\nREPLICATE e 1\nFEDERATION_ACK 1\nINVALIDATE_CACHE f []\nGENERATION none\nAUTH x\n'),
      counts,
    );
    // RDATA POSITION PING SERVER SYNC ERROR USER_SYNC USER_IP FEDERATION_ACK REMOVE_PUSHER INVALIDATE_CACHE NAME REPLICATE AUTH GENERATION OTHER
    assert.deepEqual([...counts], [2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0]);
  });
});

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

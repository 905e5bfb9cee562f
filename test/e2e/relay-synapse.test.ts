// Relay mode between Synapse's own 2017 code, as recorded
// (../shared/synapse-2017): a replaying master plays what Synapse's master
// sent and checks what the relay asks; downstream, what the relays serve is
// read as Synapse's worker would read it (the V1Worker model), or by a raw
// socket. Through two relays a v1 worker gets every row once with the
// master's tokens and row bytes, the rows of a token together (Synapse's
// catch-up sends them as separate numbered lines: D1, which the relay
// repairs), in token order (D4, repaired too), and its client commands reach
// the master as it wrote them. A stream whose catch-up the master refuses
// (D5) is followed from NOW, and older tokens get the too-old ERROR.

import assert from 'node:assert/strict';
import { after, describe, it, type TestContext } from 'node:test';
import { startRecordedMaster, type RecordedMaster } from '../support/recorded-master.js';
import { joinSessions, loadSession, recordingsSkip, sessionLines, V1Worker } from '../support/synapse-2017.js';
import { LineClient, httpGet, killAllGateways, parseMetrics, startGateway, type GatewayProcess } from './support/gateway-process.js';

after(() => killAllGateways());

const skip = recordingsSkip();

/** What a relay sends upstream besides the recorded client's lines: its NAME and PING at connect. */
const relayOpening = (line: string): boolean => /^NAME replication-gateway@\S+\n$/.test(line) || /^PING \d+\n$/.test(line);

async function relay(t: TestContext, upstreamPort: number, streams: string, upstreamName?: string): Promise<GatewayProcess> {
  const gw = await startGateway([
    '--upstream',
    `127.0.0.1:${upstreamPort}`,
    ...(upstreamName !== undefined ? ['--upstream-name', upstreamName] : []),
    '--streams',
    streams,
  ]);
  t.after(() => gw.stop());
  return gw;
}

/** Polls the gateway's /healthz until `stream`'s head is `token`. */
async function headReaches(gw: GatewayProcess, stream: string, token: number, master?: RecordedMaster): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    master?.check();
    const h = JSON.parse((await httpGet(gw.http!, '/healthz')).body) as { streams: Record<string, { head: number }> };
    if (h.streams[stream]?.head === token) return;
    if (Date.now() > deadline) throw new Error(`${stream} on the relay is at ${h.streams[stream]?.head}, not ${token}, after 10 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A downstream Synapse worker's view: the groups its handler would be given for what the relay sends. */
async function v1Worker(port: number, opening: string[], until: (w: V1Worker) => boolean): Promise<{ worker: V1Worker; lines: string[] }> {
  const c = await LineClient.connect(port);
  const worker = new V1Worker({ expectServer: 'master.test' });
  // Ahead of the LineClient's own listener, which checks until() on each chunk.
  c.socket.prependListener('data', (chunk: Buffer) => worker.feed(chunk));
  c.send(...opening);
  await c.until(() => until(worker), 'the v1 worker to be handed the rows');
  c.close();
  return { worker, lines: c.lines };
}

/** The master's row JSON for each token of `stream`, in the order it sent them, from its recorded lines. */
function recordedRows(session: string, stream: string): Map<number, string[]> {
  const rows = new Map<number, string[]>();
  for (const l of sessionLines(loadSession(session), { dir: 's2c' })) {
    const m = new RegExp(`^RDATA ${stream} (\\d+) (.*)\\n$`).exec(l.line);
    if (m === null) continue;
    const token = Number(m[1]);
    rows.set(token, [...(rows.get(token) ?? []), m[2]!]);
  }
  return rows;
}

describe("relay mode between Synapse's own 2017 master and worker, as recorded", { skip }, () => {
  it("carries Synapse's un-batched catch-up and a live row through two relays, each token handed over whole", async (t) => {
    const master = await startRecordedMaster(t, 'm-live-batch-during-catchup', { extra: relayOpening });
    const gw1 = await relay(t, master.port, 'receipts', 'master.test');
    const gw2 = await relay(t, gw1.tcp, 'receipts');
    await headReaches(gw2, 'receipts', 21, master);
    master.check();
    assert.deepEqual(
      master.played[0]!.lines.filter((l) => l.matched !== 'extra').map((l) => l.line),
      ['REPLICATE receipts 0\n'],
      'the relay asked as the recorded client did',
    );

    const { worker, lines } = await v1Worker(gw2.tcp, ['NAME synapse.app.test', 'PING 1490197665618', 'REPLICATE receipts 0'], (w) =>
      w.rowGroups().some((g) => g.type === 'position'),
    );
    const expected = recordedRows('m-live-batch-during-catchup', 'receipts');
    assert.deepEqual(
      worker.rowGroups(),
      [
        ...[...expected].map(([token, rows]) => ({ type: 'rdata', stream: 'receipts', token, rows: rows.map((r) => JSON.parse(r) as unknown) })),
        { type: 'position', stream: 'receipts', token: 21, rows: [] },
      ],
      "D1: Synapse sent each of tokens 1..20 as three numbered lines, which its own worker hands over one by one; through the relays each token is one group of three. Token 21 has one row: Synapse's master lost the other two (D2) before they left it",
    );
    // The rows are the master's bytes, batch-framed by the relay.
    const rdata = lines.filter((l) => l.startsWith('RDATA '));
    assert.deepEqual(
      rdata,
      [...expected].flatMap(([token, rows]) => rows.map((r, i) => `RDATA receipts ${i < rows.length - 1 ? 'batch' : token} ${r}`)),
    );
  });

  it('serves account_data in token order though Synapse caught it up out of order', async (t) => {
    const master = await startRecordedMaster(t, 'm-account-data-order', { extra: relayOpening });
    const gw = await relay(t, master.port, 'account_data,tag_account_data', 'master.test');
    await headReaches(gw, 'account_data', 6, master);
    await headReaches(gw, 'tag_account_data', 6, master);
    const { worker } = await v1Worker(gw.tcp, ['REPLICATE account_data 0', 'REPLICATE tag_account_data 0'], (w) =>
      w.rowGroups().filter((g) => g.type === 'position').length === 2,
    );
    const tokens = (stream: string): string[] => worker.rowGroups().filter((g) => g.stream === stream).map((g) => `${g.type} ${g.token}`);
    assert.deepEqual(tokens('account_data'), ['rdata 2', 'rdata 4', 'rdata 5', 'rdata 6', 'position 6'], 'D4: Synapse sent 4 6 2 5; token order from the relay');
    assert.deepEqual(tokens('tag_account_data'), ['rdata 1', 'rdata 3', 'position 6'], 'one POSITION, after the rows');
  });

  it('carries the client commands of a Synapse worker through both relays to the master, as the worker wrote them', async (t) => {
    const worker = loadSession('w-commands-while-connected');
    const commands = sessionLines(worker, { dir: 'c2s' })
      .map((l) => l.line)
      .filter((l) => /^(USER_SYNC|FEDERATION_ACK|REMOVE_PUSHER|INVALIDATE_CACHE|USER_IP) /.test(l));
    assert.equal(commands.length, 6);
    // The relays fold presence (one USER_SYNC per user for the whole gateway), so theirs carry their own clock.
    const withoutMs = (line: string): string => line.replace(/^(USER_SYNC \S+ (?:start|end)) \d+\n$/, '$1 <ms>\n');
    const forwarded = (line: string): boolean => commands.map(withoutMs).includes(withoutMs(line));
    const master = await startRecordedMaster(t, 'm-long-row', { extra: (l) => relayOpening(l) || forwarded(l) });
    const gw1 = await relay(t, master.port, 'events', 'master.test');
    const gw2 = await relay(t, gw1.tcp, 'events');
    await headReaches(gw2, 'events', 1, master);
    const downstream = await LineClient.connect(gw2.tcp);
    t.after(() => downstream.close());
    downstream.send('NAME synapse.app.test', 'PING 1490197665618', 'REPLICATE events 0', ...commands.map((l) => l.slice(0, -1)));
    await master.until(() => master.played[0]!.lines.filter((l) => forwarded(l.line)).length === commands.length, 'every command at the master');
    master.check();
    assert.deepEqual(
      master.played[0]!.lines.map((l) => l.line).filter(forwarded).map(withoutMs),
      commands.map(withoutMs),
      'in order and byte for byte (USER_SYNC but its clock): the \\/ and \\u00e9 escapes of ujson, the spaces in the push key',
    );
    // The master's 19,990-byte row reached the worker's socket whole (D10: a v1 worker would drop it: keep rows under 16 KiB for them).
    const [longRow] = recordedRows('m-long-row', 'events').get(1)!;
    assert.equal(await downstream.waitFor((l) => l.startsWith('RDATA events 1 ')), `RDATA events 1 ${longRow}`);
    assert.ok(longRow!.length > 16_384);
  });

  it('follows a stream whose catch-up Synapse refuses from NOW, with the master\'s tokens, and refuses older tokens as too old', async (t) => {
    // Connection 1 answered as Synapse did with 10,050 rows of history (D5: "fallen behined"), connection 2 as it answered REPLICATE events NOW.
    const session = joinSessions('refused-then-now', [
      { session: loadSession('m-catchup-over-limit'), conn: 1 },
      { session: loadSession('m-replicate-now-live'), conn: 1 },
    ]);
    // On the refusal the relay asks for NOW at once; Synapse closes after its ERROR, so it asks again on the next connection.
    const master = await startRecordedMaster(t, session, { extra: (l, conn) => relayOpening(l) || (conn === 1 && l === 'REPLICATE events NOW\n') });
    const gw = await relay(t, master.port, 'events', 'master.test');
    await headReaches(gw, 'events', 21, master);
    assert.deepEqual(
      master.played.slice(0, 2).map((c) => c.lines.filter((l) => l.matched !== 'extra').map((l) => l.line)),
      [['REPLICATE events 0\n'], ['REPLICATE events NOW\n']],
    );
    const restart = await gw.logs.waitFor((e) => e['msg'] === 'stream followed from NOW: the relay serves it from this token on', 1_000);
    assert.deepEqual([restart['stream'], restart['token']], ['events', 20]);

    const sub = await LineClient.connect(gw.tcp);
    t.after(() => sub.close());
    sub.send('REPLICATE events 20');
    const [row21] = recordedRows('m-replicate-now-live', 'events').get(21)!;
    assert.deepEqual(await sub.waitForCount((l) => l.startsWith('RDATA') || l.startsWith('POSITION'), 2), [`RDATA events 21 ${row21}`, 'POSITION events 21']);
    for (const token of [0, 19]) {
      const early = await LineClient.connect(gw.tcp);
      early.send(`REPLICATE events ${token}`);
      assert.equal(
        await early.waitFor((l) => l.startsWith('ERROR')),
        `ERROR token ${token} is older than the oldest retained token 20 (stream=events oldest=20 head=21)`,
        'no silent gap: the relay never saw the rows before 20',
      );
      await early.closed;
    }
    const m = parseMetrics((await httpGet(gw.http!, '/metrics')).body);
    assert.equal(m.get('replication_gateway_relay_now_starts_total'), 1);
    assert.equal(m.get('replication_gateway_relay_upstream_connected'), 1);
  });
});

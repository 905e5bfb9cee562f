// Which engine serves --http: ws always runs; uws only where uWebSockets.js
// loads as native code. Its JS fallback (forced with UWS_USE_FALLBACK in a
// child process, so any Node can show it) never counts.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { describe, it } from 'node:test';
import { chooseEngine, engineAvailability, EngineUnavailableError } from '../../src/bindings/engine-choice.js';

const CHOICE_MODULE = new URL('../../src/bindings/engine-choice.js', import.meta.url).href;

/** chooseEngine(choice) in a fresh Node with `env` added: its name and reason, or its error. */
function chooseInChild(choice: string, env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  const script = `import(${JSON.stringify(CHOICE_MODULE)}).then((m) => {
    try { const e = m.chooseEngine(${JSON.stringify(choice)}); console.log(JSON.stringify({ name: e.name, reason: e.reason })); }
    catch (err) { console.log(JSON.stringify({ error: err.name, message: err.message })); }
  });`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, ...env }, timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) reject(err);
      else resolve({ stdout, stderr });
    });
  });
}

describe('chooseEngine', () => {
  const uws = engineAvailability().uws;

  it('takes ws when asked, everywhere', () => {
    const e = chooseEngine('ws');
    assert.equal(e.name, 'ws');
    assert.equal(e.reason, 'asked for (--ws-engine ws)');
  });

  it('takes uws on auto where a native build loads, else ws with the reason', () => {
    const e = chooseEngine('auto');
    if (uws === true) {
      assert.deepEqual([e.name, e.reason], ['uws', 'auto: a native uWebSockets.js build loads here']);
    } else {
      assert.deepEqual([e.name, e.reason], ['ws', `auto: ${uws}`]);
      assert.throws(() => chooseEngine('uws'), (err: unknown) => err instanceof EngineUnavailableError && err.code === 'ENGINE_UNAVAILABLE');
    }
  });

  it('says why uws cannot run when its package gives only the JS fallback, quietly', async () => {
    const auto = await chooseInChild('auto', { UWS_USE_FALLBACK: '1' });
    assert.equal(auto.stderr, '');
    const chosen = JSON.parse(auto.stdout) as { name: string; reason: string };
    assert.equal(chosen.name, 'ws');
    assert.match(chosen.reason, /^auto: UWS_USE_FALLBACK is set, so uWebSockets\.js \(@trufflesuite\/uws-js-unofficial [^)]+\) gives its JS fallback, which fails on the first HTTP request$/);

    const asked = JSON.parse((await chooseInChild('uws', { UWS_USE_FALLBACK: '1' })).stdout) as { error: string; message: string };
    assert.equal(asked.error, 'EngineUnavailableError');
    assert.match(asked.message, /^--ws-engine uws: UWS_USE_FALLBACK is set, .*; use --ws-engine ws \(or auto, which picks ws here\)$/);
  });
});

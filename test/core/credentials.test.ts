// The credential model: token specs, constant-time lookup by secret, and
// what each credential lets a connection read, write and send from a page.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CredentialSet, hasSubscriberCredential, parseTokenSpec, secretsEqual } from '../../src/core/credentials.js';

describe('parseTokenSpec', () => {
  it('reads TOKEN, TOKEN:stream,stream and the +page item, for either role', () => {
    assert.deepEqual(parseTokenSpec('s3cret'), { secret: 's3cret', role: 'subscriber' });
    assert.deepEqual(parseTokenSpec('s3cret:events,typing'), { secret: 's3cret', role: 'subscriber', streams: ['events', 'typing'] });
    assert.deepEqual(parseTokenSpec('a:b:events'), { secret: 'a:b', role: 'subscriber', streams: ['events'] });
    assert.deepEqual(parseTokenSpec('m:events,caches', 'writer'), { secret: 'm', role: 'writer', streams: ['events', 'caches'] });
    assert.deepEqual(parseTokenSpec('d:typing,+page'), { secret: 'd', role: 'subscriber', streams: ['typing'], fromPages: true });
    assert.deepEqual(parseTokenSpec('d:+page', 'writer'), { secret: 'd', role: 'writer', fromPages: true });
    // Not a list after the colon: the colon is part of the secret.
    assert.deepEqual(parseTokenSpec('a:b/c'), { secret: 'a:b/c', role: 'subscriber' });
  });

  it('refuses an empty token, a leading colon and spaces', () => {
    for (const bad of ['', ':events', 'a b', 'a\tb']) assert.throws(() => parseTokenSpec(bad), /bad token spec: expected TOKEN/, JSON.stringify(bad));
  });
});

describe('secretsEqual', () => {
  it('is true for equal secrets and false for unequal ones, of the same or different lengths', () => {
    assert.equal(secretsEqual('s3cret', 's3cret'), true);
    assert.equal(secretsEqual('', ''), true);
    assert.equal(secretsEqual('s3cret', 's3creT'), false);
    assert.equal(secretsEqual('s3cret', 's3cre'), false);
    assert.equal(secretsEqual('s3cret', 's3cret-and-more'), false);
    assert.equal(secretsEqual('', 'x'), false);
    assert.equal(secretsEqual('é', 'e'), false);
  });
});

describe('CredentialSet', () => {
  const set = new CredentialSet([
    { secret: 'all', role: 'subscriber' },
    { secret: 'tab', role: 'subscriber', streams: ['typing', 'presence'] },
    { secret: 'dash', role: 'subscriber', streams: ['typing'], fromPages: true },
    { secret: 'master', role: 'writer' },
    { secret: 'caches-writer', role: 'writer', streams: ['caches'] },
  ]);

  it('finds a credential by its exact secret only', () => {
    assert.equal(set.lookup('tab')?.credential.secret, 'tab');
    assert.equal(set.lookup('master')?.credential.role, 'writer');
    for (const miss of ['', 'ta', 'tabs', 'TAB', 'all ', 'maste']) assert.equal(set.lookup(miss), null, miss);
  });

  it('says what each may read and write, and whether its pages may act', () => {
    assert.equal(set.lookup('all')!.readable, null);
    assert.deepEqual([...set.lookup('tab')!.readable!], ['typing', 'presence']);
    assert.equal(set.lookup('tab')!.writable?.size, 0, 'a subscriber writes nothing');
    assert.equal(set.lookup('master')!.writable, null, 'a writer of every stream');
    assert.deepEqual([...set.lookup('caches-writer')!.writable!], ['caches']);
    assert.deepEqual([...set.lookup('caches-writer')!.readable!], ['caches'], 'a writer reads what it writes');
    assert.equal(set.lookup('dash')!.fromPages, true);
    assert.equal(set.lookup('tab')!.fromPages, false);
  });

  it('refuses two credentials with one secret, an empty secret and a bad stream name', () => {
    assert.throws(() => new CredentialSet([{ secret: 'x', role: 'writer' }, { secret: 'x', role: 'subscriber' }]), /credential 2 \(a subscriber\) has the secret of an earlier one/);
    assert.throws(() => new CredentialSet([{ secret: '', role: 'writer' }]), /credential 1 \(a writer\): empty secret/);
    assert.throws(() => new CredentialSet([{ secret: 'y', role: 'subscriber', streams: ['ev ents'] }]), /bad stream name 'ev ents'/);
  });

  it('tells whether any subscriber credential exists (reads are not open to anyone)', () => {
    assert.equal(set.hasSubscriber, true);
    assert.equal(new CredentialSet([{ secret: 'w', role: 'writer' }]).hasSubscriber, false);
    assert.equal(hasSubscriberCredential([]), false);
  });
});

import assert from 'node:assert/strict';
import { isLoopbackUrl } from '../../src/lib/loopback-host.ts';
import { tokenTransportAllowed } from '../../src/core/space-bindings.ts';

describe('loopback hosts and where a token may travel', () => {
  it('counts 127.0.0.0/8, ::1 (mapped forms too) and localhost as this machine, whatever their spelling', () => {
    for (const url of ['http://127.0.0.1:80/x', 'http://127.8.9.1', 'http://[::1]:3000/', 'http://localhost:1', 'http://LOCALHOST', 'http://[::ffff:127.0.0.1]/', 'http://2130706433/', 'http://0x7f.1/']) {
      assert.equal(isLoopbackUrl(new URL(url)), true, url);
    }
  });

  it('counts nothing else: names that merely contain localhost, private and unspecified addresses', () => {
    for (const url of ['http://space.example', 'http://localhost.example.com', 'http://10.0.0.1', 'http://192.168.1.1', 'http://[::]/', 'http://0.0.0.0/', 'http://[fe80::1]/', 'http://169.254.169.254/']) {
      assert.equal(isLoopbackUrl(new URL(url)), false, url);
    }
  });

  it('lets a token go over https anywhere, over plain http only where trusted, and never over other schemes', () => {
    assert.equal(tokenTransportAllowed('https://space.example/mcp', isLoopbackUrl), true);
    assert.equal(tokenTransportAllowed('http://127.0.0.1:7860/mcp', isLoopbackUrl), true);
    assert.equal(tokenTransportAllowed('http://space.example/mcp', isLoopbackUrl), false);
    assert.equal(tokenTransportAllowed('http://space.example/mcp', () => true), true);
    for (const url of ['ftp://127.0.0.1/', 'ws://127.0.0.1/', 'not a url', '']) assert.equal(tokenTransportAllowed(url, () => true), false, url);
  });
});

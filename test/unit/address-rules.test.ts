import assert from 'node:assert/strict';
import { TargetNotAllowedError } from '../../src/core/errors.ts';
import { createOutboundGuard, type OutboundGuard, type ResolveHost } from '../../src/integrations/outbound-guard.ts';
import { isAddressAllowed, isHostAllowlisted, parseAllowlist } from '../../src/lib/address-rules.ts';

// Pure rules and the pre-connection check. Nothing here opens a connection: names resolve through a table.

const REFUSED_V4 = [
  ['127.0.0.1', 'loopback'],
  ['127.255.255.254', 'loopback'],
  ['10.1.2.3', 'RFC 1918'],
  ['172.16.0.1', 'RFC 1918'],
  ['172.31.255.255', 'RFC 1918'],
  ['192.168.1.1', 'RFC 1918'],
  ['100.64.0.1', 'CGNAT'],
  ['169.254.169.254', 'link-local / cloud metadata'],
  ['0.0.0.0', 'unspecified'],
  ['255.255.255.255', 'broadcast'],
  ['224.0.0.1', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['192.0.2.1', 'documentation (reserved)'],
];

const REFUSED_V6 = [
  ['::1', 'loopback'],
  ['::', 'unspecified'],
  ['fe80::1', 'link-local'],
  ['fd00::1', 'unique local'],
  ['fc00::1', 'unique local'],
  ['ff02::1', 'multicast'],
  ['::ffff:127.0.0.1', 'IPv4-mapped loopback'],
  ['::ffff:7f00:1', 'IPv4-mapped loopback, hex'],
  ['::127.0.0.1', 'IPv4-compatible loopback'],
  ['::7f00:1', 'IPv4-compatible loopback, hex'],
  ['::ffff:169.254.169.254', 'IPv4-mapped metadata'],
  ['::ffff:10.0.0.1', 'IPv4-mapped private'],
  ['64:ff9b::7f00:1', 'NAT64 (rfc6052)'],
  ['2002:7f00:1::', '6to4'],
  ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo'],
  ['2001:db8::1', 'documentation'],
  ['::ffff:0:7f00:1', 'IPv4-translated (rfc6145)'],
];

const ALLOWED = ['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700::1', '2a00:1450:4001::200e', '::ffff:8.8.8.8'];

describe('address rules', function () {
  describe('isAddressAllowed without an allowlist', function () {
    for (const [ip, why] of [...REFUSED_V4, ...REFUSED_V6]) {
      it(`refuses ${ip} (${why})`, function () {
        assert.equal(isAddressAllowed(ip!), false);
      });
    }
    for (const ip of ALLOWED) {
      it(`allows ${ip} (public unicast)`, function () {
        assert.equal(isAddressAllowed(ip), true);
      });
    }
    it('refuses anything that is not an IP address', function () {
      for (const v of ['', 'localhost', '127.0.0.1.nip.io', '2130706433x', '[::1', 'fe80::1%']) assert.equal(isAddressAllowed(v), false, v);
    });
    it('accepts the bracketed form a URL gives an IPv6 host', function () {
      assert.equal(isAddressAllowed('[::1]'), false);
      assert.equal(isAddressAllowed('[2606:4700::1]'), true);
    });
  });

  describe('the allowlist', function () {
    it('a CIDR allows its range, also in IPv4-mapped and -compatible form, and nothing else', function () {
      const list = parseAllowlist('127.0.0.0/8, ::1/128');
      for (const ip of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::7f00:1']) assert.equal(isAddressAllowed(ip, list), true, ip);
      for (const ip of ['10.0.0.1', '169.254.169.254', 'fe80::1', '::2', '0.0.0.0']) assert.equal(isAddressAllowed(ip, list), false, ip);
    });

    it('an IP host:port entry allows that address on that port only', function () {
      const list = parseAllowlist('10.0.0.5:8080,[fd00::7]:443');
      assert.equal(isAddressAllowed('10.0.0.5', list, 8080), true);
      assert.equal(isAddressAllowed('::ffff:10.0.0.5', list, 8080), true);
      assert.equal(isAddressAllowed('10.0.0.5', list, 8081), false);
      assert.equal(isAddressAllowed('10.0.0.5', list), false);
      assert.equal(isAddressAllowed('10.0.0.6', list, 8080), false);
      assert.equal(isAddressAllowed('fd00::7', list, 443), true);
      assert.equal(isAddressAllowed('fd00::8', list, 443), false);
    });

    it('a name host:port entry matches the URL host and port, case-insensitively', function () {
      const list = parseAllowlist('MCP.Internal:8080,10.0.0.5:80');
      assert.equal(isHostAllowlisted('mcp.internal', 8080, list), true);
      assert.equal(isHostAllowlisted('mcp.internal', 8081, list), false);
      assert.equal(isHostAllowlisted('other.internal', 8080, list), false);
      assert.equal(isHostAllowlisted('10.0.0.5', 80, list), true);
    });

    it('rejects entries it cannot read, naming them', function () {
      for (const bad of ['127.0.0.1', 'localhost', '127.1/8', '0x7f.0.0.1/8', '10.0.0.0/33', '::1/129', 'host:0', 'host:70000', 'http://x:80', 'a b:80', '::1:80', '[zz]:80', '*']) {
        assert.throws(() => parseAllowlist(bad), (e: Error) => e.message.includes(JSON.stringify(bad)), bad);
      }
      assert.throws(() => parseAllowlist('127.0.0.0/8,nope,::1/128'), /"nope"/);
    });

    it('an empty list or stray commas allow nothing extra', function () {
      const list = parseAllowlist(' , ,');
      assert.deepEqual([list.ranges.length, list.hosts.length], [0, 0]);
      assert.equal(isAddressAllowed('127.0.0.1', list, 80), false);
    });
  });
});

describe('outbound guard: checkUrl', function () {
  const table: Record<string, string[]> = {
    'evil.example': ['127.0.0.1'],
    'meta.example': ['169.254.169.254'],
    'mixed.example': ['8.8.8.8', '10.0.0.1'],
    'v6.example': ['::1'],
    'mapped.example': ['::ffff:127.0.0.1'],
    'public.example': ['93.184.216.34', '2606:4700::1'],
  };
  const looked: string[] = [];
  const lookup: ResolveHost = async (host) => {
    looked.push(host);
    const answers = table[host];
    if (!answers) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return answers.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const guards: OutboundGuard[] = [];
  const guard = (allowlist = '') => {
    const g = createOutboundGuard({ allowlist: parseAllowlist(allowlist), lookup });
    guards.push(g);
    return g;
  };
  after(async function () {
    await Promise.all(guards.map((g) => g.close()));
  });
  beforeEach(function () {
    looked.length = 0;
  });

  const refused = async (g: OutboundGuard, url: string) => {
    await assert.rejects(g.checkUrl(url), (e: unknown) => {
      assert.ok(e instanceof TargetNotAllowedError, `${url}: ${String(e)}`);
      assert.equal(e.code, 'TargetNotAllowed');
      // Says no more than "not allowed": no rule, no resolved address.
      assert.doesNotMatch(e.message, /127|169\.254|10\.0|loopback|private|link|resolv/i);
      return true;
    }, url);
  };

  it('refuses IP literals in every spelling the URL parser folds to a refused address, without DNS', async function () {
    const g = guard();
    for (const url of [
      'http://127.0.0.1:6379/',
      'http://[::1]:5432/',
      'http://169.254.169.254/latest/meta-data/',
      'http://2130706433/',
      'http://0177.0.0.1/',
      'http://0x7f.1/',
      'http://127.1/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:7f00:1]/',
      'http://[::127.0.0.1]/',
      'http://[::ffff:169.254.169.254]/',
      'http://[64:ff9b::7f00:1]/',
      'http://[2002:7f00:1::]/',
      'http://[fe80::1]/',
      'http://0.0.0.0:8080/',
      'https://10.0.0.1/',
    ]) {
      await refused(g, url);
    }
    assert.deepEqual(looked, [], 'IP literals are not looked up');
  });

  it('refuses names that resolve to refused addresses, and a name with any refused answer', async function () {
    const g = guard();
    for (const host of ['evil.example', 'meta.example', 'mixed.example', 'v6.example', 'mapped.example']) await refused(g, `http://${host}/mcp`);
  });

  it('accepts public literals and names whose every answer is public', async function () {
    const g = guard();
    await g.checkUrl('https://public.example/mcp');
    await g.checkUrl('http://8.8.8.8:8080/');
    await g.checkUrl('http://[2606:4700::1]/');
  });

  it('refuses other schemes and URLs with credentials, and unparsable input', async function () {
    const g = guard();
    for (const url of ['ftp://public.example/', 'file:///etc/passwd', 'gopher://public.example:70/', 'http://user:pw@public.example/', 'http://user@public.example/', 'not a url', '']) {
      await refused(g, url);
    }
  });

  it('a name that does not resolve passes the early check (the connection checks again)', async function () {
    await guard().checkUrl('http://nowhere.example/');
  });

  it('CIDR exceptions apply to literals and resolved names alike', async function () {
    const g = guard('127.0.0.0/8,::1/128');
    await g.checkUrl('http://127.0.0.1:6379/');
    await g.checkUrl('http://2130706433/');
    await g.checkUrl('http://[::1]:5432/');
    await g.checkUrl('http://[::ffff:127.0.0.1]/');
    await g.checkUrl('http://evil.example/');
    await refused(g, 'http://169.254.169.254/');
    await refused(g, 'http://mixed.example/');
  });

  it('host:port exceptions match host and port, not just one of them', async function () {
    const g = guard('meta.example:8080,127.0.0.1:6379');
    await g.checkUrl('http://meta.example:8080/');
    await refused(g, 'http://meta.example:8081/');
    await refused(g, 'http://meta.example/');
    await g.checkUrl('http://127.0.0.1:6379/');
    await g.checkUrl('http://2130706433:6379/');
    await g.checkUrl('http://evil.example:6379/');
    await refused(g, 'http://127.0.0.1:6380/');
    // The default port counts: 80 for http, 443 for https.
    const d = guard('evil.example:80');
    await d.checkUrl('http://evil.example/');
    await refused(d, 'https://evil.example/');
  });
});

// The SSRF address matrix: every forbidden range in every notation a target URL or a resolver can
// hand us, the public neighbours that must stay allowed, and the operator's allow-list. Pure code,
// plain values; the resolving and connecting halves are in ssrf.guard.test.ts.
import { describe, expect, it } from 'vitest';
import {
  allowListFrom,
  checkAddress,
  describeRefusal,
  type ForbiddenKind,
  formatAddress,
  parseCidr,
  parseCidrList,
  parseIpLiteral,
} from '../src/domain/address-policy.js';
import { checkTargetUrl, type TargetPolicy } from '../src/domain/target-url.js';
import { CountersignError } from '../src/errors.js';

/** [host as written, the address it means, why it is refused] */
const FORBIDDEN: [string, string, ForbiddenKind][] = [
  // IPv4 loopback in every inet_aton notation
  ['127.0.0.1', '127.0.0.1', 'loopback'],
  ['127.1', '127.0.0.1', 'loopback'],
  ['127.0.1', '127.0.0.1', 'loopback'],
  ['2130706433', '127.0.0.1', 'loopback'],
  ['0x7f000001', '127.0.0.1', 'loopback'],
  ['017700000001', '127.0.0.1', 'loopback'],
  ['0177.0.0.1', '127.0.0.1', 'loopback'],
  ['0x7f.0.0.1', '127.0.0.1', 'loopback'],
  ['0x7f.1', '127.0.0.1', 'loopback'],
  ['0177.0x0.0.01', '127.0.0.1', 'loopback'],
  ['127.0.0.1.', '127.0.0.1', 'loopback'],
  ['127.255.255.254', '127.255.255.254', 'loopback'],
  ['127.0.0.0x', '127.0.0.0', 'loopback'],
  // unspecified and "this network"
  ['0.0.0.0', '0.0.0.0', 'unspecified'],
  ['0', '0.0.0.0', 'unspecified'],
  ['0x', '0.0.0.0', 'unspecified'],
  ['0.1.2.3', '0.1.2.3', 'this-network'],
  // RFC 1918
  ['10.0.0.1', '10.0.0.1', 'private'],
  ['10.1.1', '10.1.0.1', 'private'],
  ['012.0.0.1', '10.0.0.1', 'private'],
  ['167772161', '10.0.0.1', 'private'],
  ['172.16.0.1', '172.16.0.1', 'private'],
  ['172.31.255.255', '172.31.255.255', 'private'],
  ['192.168.1.1', '192.168.1.1', 'private'],
  ['0xc0.0xa8.1.1', '192.168.1.1', 'private'],
  ['3232235777', '192.168.1.1', 'private'],
  // link-local and the cloud metadata service
  ['169.254.169.254', '169.254.169.254', 'link-local'],
  ['0xa9fea9fe', '169.254.169.254', 'link-local'],
  ['169.254.43518', '169.254.169.254', 'link-local'],
  ['2852039166', '169.254.169.254', 'link-local'],
  ['169.254.0.1', '169.254.0.1', 'link-local'],
  // CGNAT, IETF, documentation, benchmarking, multicast, broadcast, reserved
  ['100.64.0.1', '100.64.0.1', 'cgnat'],
  ['100.127.255.254', '100.127.255.254', 'cgnat'],
  ['192.0.0.8', '192.0.0.8', 'ietf-protocol'],
  ['192.0.2.10', '192.0.2.10', 'documentation'],
  ['198.51.100.7', '198.51.100.7', 'documentation'],
  ['203.0.113.9', '203.0.113.9', 'documentation'],
  ['198.18.0.1', '198.18.0.1', 'benchmarking'],
  ['198.19.255.255', '198.19.255.255', 'benchmarking'],
  ['224.0.0.1', '224.0.0.1', 'multicast'],
  ['239.255.255.250', '239.255.255.250', 'multicast'],
  ['255.255.255.255', '255.255.255.255', 'broadcast'],
  ['4294967295', '255.255.255.255', 'broadcast'],
  ['240.0.0.1', '240.0.0.1', 'reserved'],
  ['192.88.99.1', '192.88.99.1', 'reserved'],
  // IPv6 loopback, unspecified, ULA, link-local, site-local, multicast, documentation, others
  ['::1', '::1', 'loopback'],
  ['[::1]', '::1', 'loopback'],
  ['0:0:0:0:0:0:0:1', '::1', 'loopback'],
  ['::', '::', 'unspecified'],
  ['fc00::1', 'fc00::1', 'unique-local'],
  ['fd12:3456::1', 'fd12:3456::1', 'unique-local'],
  ['fe80::1', 'fe80::1', 'link-local'],
  ['fe80::1%eth0', 'fe80::1', 'link-local'],
  ['febf:ffff::1', 'febf:ffff::1', 'link-local'],
  ['fec0::1', 'fec0::1', 'site-local'],
  ['ff02::1', 'ff02::1', 'multicast'],
  ['2001:db8::1', '2001:db8::1', 'documentation'],
  ['3fff::1', '3fff::1', 'documentation'],
  ['2001:2::1', '2001:2::1', 'benchmarking'],
  ['100::1', '100::1', 'reserved'],
  ['5f00::1', '5f00::1', 'not-global-unicast'],
  // IPv6 forms of forbidden IPv4 addresses
  ['::ffff:127.0.0.1', '::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', '::ffff:127.0.0.1', 'loopback'],
  ['[::ffff:169.254.169.254]', '::ffff:169.254.169.254', 'link-local'],
  ['::ffff:10.0.0.1', '::ffff:10.0.0.1', 'private'],
  ['::127.0.0.1', '::7f00:1', 'loopback'],
  ['::a00:1', '::a00:1', 'private'],
  ['::ffff:0:7f00:1', '::ffff:0:7f00:1', 'loopback'],
  ['64:ff9b::7f00:1', '64:ff9b::7f00:1', 'loopback'],
  ['64:ff9b::10.0.0.1', '64:ff9b::a00:1', 'private'],
  ['64:ff9b:1::a9fe:a9fe', '64:ff9b:1::a9fe:a9fe', 'link-local'],
  ['64:ff9b:1::808:808', '64:ff9b:1::808:808', 'reserved'],
  ['2002:7f00:1::1', '2002:7f00:1::1', 'loopback'],
  ['2002:a9fe:a9fe::1', '2002:a9fe:a9fe::1', 'link-local'],
  ['2002:c0a8:101::1', '2002:c0a8:101::1', 'private'],
  // Teredo: public server 65.54.227.120, client 127.0.0.1 stored bit-inverted
  ['2001:0:4136:e378:8000:63bf:80ff:fffe', '2001:0:4136:e378:8000:63bf:80ff:fffe', 'loopback'],
  // Teredo with a private server address
  ['2001:0:a00:1::', '2001:0:a00:1::', 'private'],
];

const PUBLIC: string[] = [
  '8.8.8.8',
  '1.1.1.1',
  '16909060', // 1.2.3.4
  '11.0.0.1',
  '126.255.255.255',
  '128.0.0.1',
  '100.63.255.255',
  '100.128.0.0',
  '169.253.255.255',
  '169.255.0.0',
  '172.15.255.255',
  '172.32.0.0',
  '192.167.255.255',
  '192.169.0.0',
  '198.17.255.255',
  '198.20.0.0',
  '223.255.255.255',
  '2606:4700:4700::1111',
  '2001:4860:4860::8888',
  '::ffff:8.8.8.8',
  '64:ff9b::808:808',
  '2002:808:808::1',
];

const strict: TargetPolicy = { allowInsecure: false };

describe('the SSRF address policy', () => {
  it('has a matrix of at least 40 forbidden targets', () => {
    expect(FORBIDDEN.length).toBeGreaterThanOrEqual(40);
  });

  it.each(FORBIDDEN)('refuses %s (%s) as %s', (host, address, kind) => {
    const ip = parseIpLiteral(host);
    expect(ip, `${host} should parse as an IP literal`).toBeDefined();
    const verdict = checkAddress(ip as NonNullable<typeof ip>);
    expect(verdict).toMatchObject({ allowed: false, address, kind });
    if (!verdict.allowed) expect(verdict.reason.length).toBeGreaterThan(5);
  });

  it.each(PUBLIC)('allows the public address %s', (host) => {
    expect(checkAddress(host)).toMatchObject({ allowed: true, allowListed: false });
  });

  it('names the embedded IPv4 address and the form it hides in', () => {
    expect(checkAddress('::ffff:169.254.169.254')).toMatchObject({
      allowed: false,
      reason: 'an IPv4-mapped form of 169.254.169.254, a link-local address (the cloud metadata service)',
      embedded: { via: 'ipv4-mapped', address: '169.254.169.254' },
    });
    expect(checkAddress('2002:c0a8:101::1')).toMatchObject({ embedded: { via: '6to4', address: '192.168.1.1' } });
    expect(checkAddress('64:ff9b::a00:1')).toMatchObject({ embedded: { via: 'nat64', address: '10.0.0.1' } });
    expect(checkAddress('2001:0:4136:e378:8000:63bf:80ff:fffe')).toMatchObject({
      embedded: { via: 'teredo', address: '127.0.0.1' },
    });
    expect(checkAddress('10.0.0.1')).toMatchObject({ reason: 'a private address (RFC 1918)' });
  });

  it('does not take host names, or numbers inet_aton would reject, for IP literals', () => {
    for (const host of [
      'example.com',
      '127.0.0.1.nip.io',
      'localhost',
      '1e3',
      '0x7g.1',
      '08.0.0.1',
      '256.0.0.1',
      '1.2.3.4.5',
      '1..2',
      '4294967296',
      '1.16777216',
      '',
      '[127.0.0.1]',
      ':::1',
    ]) {
      expect(parseIpLiteral(host), host).toBeUndefined();
    }
  });

  it('reads the odd but valid literal forms, and only those', () => {
    const text = (s: string) => {
      const ip = parseIpLiteral(s);
      return ip && formatAddress(ip);
    };
    expect(text(' 127.0.0.1 ')).toBe('127.0.0.1');
    expect(text('\t[::1]\n')).toBe('::1');
    // A zone id is dropped whole, even one with dots or colons in it.
    expect(text('fe80::1%1.2')).toBe('fe80::1');
    expect(text('fe80::1%a:b')).toBe('fe80::1');
    expect(text('[fe80::2%eth0]')).toBe('fe80::2');
    // A dotted tail after six full groups, or after ::
    expect(text('1:2:3:4:5:6:1.2.3.4')).toBe('1:2:3:4:5:6:102:304');
    expect(text('0:0:0:0:0:ffff:127.0.0.1')).toBe('::ffff:127.0.0.1');
    expect(text('1::1.2.3.4')).toBe('1::102:304');
    expect(text('FE80::ABCD')).toBe('fe80::abcd');
    // Half a bracket pair, a fifth part (even a zero), radix prefixes where they do not lead
    for (const host of ['[::1', '::1]', '1::1]', '1.2.3.4.0', '120x1', '0178', '1.2.3.09', '0x1.0x100.1']) {
      expect(parseIpLiteral(host), host).toBeUndefined();
    }
  });

  it('refuses a resolver answer that is not an IP address at all', () => {
    expect(checkAddress('not-an-address')).toEqual({
      allowed: false,
      address: 'not-an-address',
      kind: 'reserved',
      reason: 'not an IP address',
    });
  });

  it('words a refusal for a literal host apart from one for a name that resolved to the address', () => {
    const verdict = { address: '10.0.0.1', reason: 'a private address (RFC 1918)' };
    expect(describeRefusal('10.0.0.1', verdict)).toBe('10.0.0.1 is a private address (RFC 1918)');
    expect(describeRefusal('0xa.1', verdict)).toBe('10.0.0.1 is a private address (RFC 1918)');
    expect(describeRefusal('db.internal', verdict)).toBe(
      'db.internal resolves to 10.0.0.1, a private address (RFC 1918)',
    );
    expect(describeRefusal('10.0.0.2', verdict)).toBe('10.0.0.2 resolves to 10.0.0.1, a private address (RFC 1918)');
    const v6 = { address: 'fe80::1', reason: 'an IPv6 link-local address' };
    expect(describeRefusal('[fe80::1]', v6)).toBe('fe80::1 is an IPv6 link-local address');
    expect(describeRefusal('[FE80:0::1]', v6)).toBe('fe80::1 is an IPv6 link-local address');
    // Only the brackets around an IPv6 literal are dropped.
    expect(describeRefusal('a[b]c', v6)).toBe('a[b]c resolves to fe80::1, an IPv6 link-local address');
  });

  it('formats addresses canonically (RFC 5952, IPv4-mapped shown dotted)', () => {
    const text = (s: string) => formatAddress(parseIpLiteral(s) as NonNullable<ReturnType<typeof parseIpLiteral>>);
    expect(text('2001:0DB8:0000:0000:0000:0000:0000:0001')).toBe('2001:db8::1');
    expect(text('2001:db8:0:0:1:0:0:1')).toBe('2001:db8::1:0:0:1');
    expect(text('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(text('::ffff:7f00:1')).toBe('::ffff:127.0.0.1');
    expect(text('1:2:3:4:5:6:7:8')).toBe('1:2:3:4:5:6:7:8');
    expect(text('0x7f.1')).toBe('127.0.0.1');
  });
});

describe('agreement with the WHATWG URL parser', () => {
  // A deterministic sweep: the policy must read every IPv4 notation and IPv6 text exactly as
  // new URL() does, or a literal could mean one address to the check and another to the connect.
  let seed = 42;
  const random = () => {
    seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31;
    return seed / 2 ** 31;
  };
  const notations = [
    (v: number) => String(v),
    (v: number) => `0x${v.toString(16)}`,
    (v: number) => `0${v.toString(8)}`,
    (v: number) => `${v >>> 24}.${v & 0xffffff}`,
    (v: number) => `0x${(v >>> 24).toString(16)}.0${((v >>> 16) & 0xff).toString(8)}.${v & 0xffff}`,
    (v: number) => [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff].join('.'),
  ];

  it('reads 3,000 IPv4 literals in mixed notations to the same address', () => {
    for (let n = 0; n < 3000; n++) {
      const value = Math.floor(random() * 2 ** 32);
      const host = (notations[n % notations.length] as (v: number) => string)(value);
      const ip = parseIpLiteral(host);
      expect(ip && formatAddress(ip), host).toBe(new URL(`https://${host}/`).hostname);
    }
  });

  it('formats 3,000 IPv6 addresses as new URL() serialises them', () => {
    for (let n = 0; n < 3000; n++) {
      const groups = Array.from({ length: 8 }, () => (random() < 0.5 ? 0 : Math.floor(random() * 0x10000)));
      if (groups.slice(0, 6).join() === '0,0,0,0,0,65535') continue; // mapped: we print it dotted
      const text = groups.map((g) => g.toString(16)).join(':');
      const ip = parseIpLiteral(text);
      expect(ip && formatAddress(ip), text).toBe(new URL(`https://[${text}]/`).hostname.slice(1, -1));
    }
  });
});

describe('target URLs with literal hosts', () => {
  // The WHATWG parser (new URL) already folds the inet_aton notations into dotted quads; the
  // policy must catch them either way.
  it('relies on new URL() folding IPv4 notations the way inet_aton reads them', () => {
    expect(new URL('https://0x7f.1/').hostname).toBe('127.0.0.1');
    expect(new URL('https://2130706433/').hostname).toBe('127.0.0.1');
    expect(new URL('https://0177.0.0.1/').hostname).toBe('127.0.0.1');
    expect(new URL('https://10.1.1/').hostname).toBe('10.1.0.1');
    expect(new URL('https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/').hostname).toBe('127.0.0.1');
  });

  const urlHosts: [string, string][] = FORBIDDEN.filter(([host]) => !host.includes('%')).map(([host, address]) => {
    const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
    return [`https://${bracketed}/hook`, address];
  });
  urlHosts.push(['https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/', '127.0.0.1']);
  urlHosts.push(['https://LOCALHOST./x', '127.0.0.1']);
  urlHosts.push(['https://api.localhost/x', '127.0.0.1']);

  it.each(urlHosts)('refuses %s with a reason naming %s', (url, address) => {
    let caught: unknown;
    try {
      checkTargetUrl(url, 'target_url', strict);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CountersignError);
    const err = caught as CountersignError;
    expect(err.statusCode).toBe(400);
    expect(err.message).toMatch(/^target_url: must not point at an internal address: /);
    if (!url.toLowerCase().includes('localhost')) expect(err.message).toContain(`${address} is `);
  });

  it('accepts every one of them in insecure mode (local development), http too', () => {
    for (const [url] of urlHosts) {
      expect(() => checkTargetUrl(url, 'target_url', { allowInsecure: true })).not.toThrow();
    }
    expect(checkTargetUrl('http://0x7f.1:9000/x', 'target_url', { allowInsecure: true })).toBe(
      'http://127.0.0.1:9000/x',
    );
  });

  it('leaves host names to the resolving check, public literals pass', () => {
    expect(checkTargetUrl('https://127.0.0.1.nip.io/x', 'target_url', strict)).toBe('https://127.0.0.1.nip.io/x');
    expect(checkTargetUrl('https://8.8.8.8/x', 'target_url', strict)).toBe('https://8.8.8.8/x');
    expect(checkTargetUrl('https://[2606:4700:4700::1111]/x', 'target_url', strict)).toBe(
      'https://[2606:4700:4700::1111]/x',
    );
  });

  it('still refuses http and credentials outside insecure mode, whatever the host', () => {
    expect(() => checkTargetUrl('http://8.8.8.8/x', 'target_url', strict)).toThrow(/must use https/);
    expect(() => checkTargetUrl('https://u:p@8.8.8.8/x', 'target_url', strict)).toThrow(/credentials/);
  });
});

describe('the operator allow-list (COUNTERSIGN_ALLOWED_TARGET_CIDRS)', () => {
  const allow = (text: string) => parseCidrList(text);

  it('overrides a refusal for addresses inside an allowed CIDR, and only those', () => {
    const list = allow('127.0.0.1/32, 10.0.0.0/8,fd00::/8');
    expect(checkAddress('127.0.0.1', list)).toEqual({ allowed: true, address: '127.0.0.1', allowListed: true });
    expect(checkAddress('::ffff:127.0.0.1', list)).toMatchObject({ allowed: true, allowListed: true });
    expect(checkAddress('10.200.1.1', list)).toMatchObject({ allowed: true, allowListed: true });
    expect(checkAddress('fd00::5', list)).toMatchObject({ allowed: true, allowListed: true });
    expect(checkAddress('127.0.0.2', list)).toMatchObject({ allowed: false, kind: 'loopback' });
    expect(checkAddress('169.254.169.254', list)).toMatchObject({ allowed: false, kind: 'link-local' });
    expect(checkAddress('fc00::1', list)).toMatchObject({ allowed: false, kind: 'unique-local' });
    expect(checkAddress('::1', list)).toMatchObject({ allowed: false, kind: 'loopback' });
  });

  it('lets allow-listed literal target URLs through outside insecure mode, https still required', () => {
    const policy: TargetPolicy = { allowInsecure: false, allowedCidrs: ['127.0.0.1/32', '10.0.0.0/8'] };
    expect(checkTargetUrl('https://127.0.0.1:8443/x', 'target_url', policy)).toBe('https://127.0.0.1:8443/x');
    expect(checkTargetUrl('https://0x7f.1/x', 'target_url', policy)).toBe('https://127.0.0.1/x');
    expect(checkTargetUrl('https://localhost/x', 'target_url', policy)).toBe('https://localhost/x');
    expect(checkTargetUrl('https://10.9.8.7/x', 'target_url', policy)).toBe('https://10.9.8.7/x');
    expect(() => checkTargetUrl('https://192.168.0.1/x', 'target_url', policy)).toThrow(/private/);
    expect(() => checkTargetUrl('http://127.0.0.1/x', 'target_url', policy)).toThrow(/must use https/);
  });

  it('reads CIDRs and bare addresses, canonicalised, and ignores blanks', () => {
    expect(allow(' 127.0.0.1 , ,10.0.0.0/8, FD00::/8, ::1').map((c) => c.text)).toEqual([
      '127.0.0.1/32',
      '10.0.0.0/8',
      'fd00::/8',
      '::1/128',
    ]);
    expect(allow('')).toEqual([]);
  });

  it('keeps address families apart, and sees through IPv4-mapped addresses only', () => {
    expect(checkAddress('::1', allow('0.0.0.0/0'))).toMatchObject({ allowed: false, kind: 'loopback' });
    expect(checkAddress('fe80::1', allow('0.0.0.0/0'))).toMatchObject({ allowed: false, kind: 'link-local' });
    expect(checkAddress('127.0.0.1', allow('::/0'))).toMatchObject({ allowed: false, kind: 'loopback' });
    expect(checkAddress('10.0.0.1', allow('0.0.0.0/0'))).toMatchObject({ allowed: true, allowListed: true });
    expect(checkAddress('::ffff:127.0.0.1', allow('127.0.0.0/8'))).toMatchObject({ allowed: true, allowListed: true });
    const loopback = allow('127.0.0.0/8');
    for (const host of ['::127.0.0.1', '::ffff:0:127.0.0.1', '64:ff9b::127.0.0.1', '2002:7f00:1::1']) {
      expect(checkAddress(host, loopback), host).toMatchObject({ allowed: false, kind: 'loopback' });
    }
  });

  it('compiles a configured list once, and an absent or empty one to nothing', () => {
    const configured = ['127.0.0.1/32', 'fd00::/8'];
    const list = allowListFrom(configured);
    expect(list.map((c) => c.text)).toEqual(['127.0.0.1/32', 'fd00::/8']);
    expect(allowListFrom(configured)).toBe(list);
    expect(allowListFrom(undefined)).toEqual([]);
    expect(allowListFrom([])).toEqual([]);
    expect(checkAddress('127.0.0.1', allowListFrom(undefined))).toMatchObject({ allowed: false, kind: 'loopback' });
  });

  it('reads one CIDR strictly: trimmed, prefix 0 up to the family width, in plain digits', () => {
    expect(parseCidr(' 10.0.0.0/8 ')).toEqual({ family: 4, value: 0x0a00_0000n, prefix: 8, text: '10.0.0.0/8' });
    expect(parseCidr('0.0.0.0/0')).toMatchObject({ prefix: 0, text: '0.0.0.0/0' });
    expect(parseCidr('::/0')).toMatchObject({ family: 6, prefix: 0, text: '::/0' });
    expect(parseCidr('2001:DB8::/32')).toEqual({
      family: 6,
      value: 0x2001_0db8n << 96n,
      prefix: 32,
      text: '2001:db8::/32',
    });
    expect(parseCidr('10.1.2.3')).toMatchObject({ prefix: 32, text: '10.1.2.3/32' });
    for (const text of ['10.0.0.0/+8', '10.0.0.0/8.0', '10.0.0.0/ 8', '10.0.0.0/0x8', '10.0.0.0/-0', '10.0.0.0/1000']) {
      expect(() => parseCidr(text), text).toThrow(/prefix length outside 0-32/);
    }
    expect(() => parseCidr('fd00::1/8')).toThrow('"fd00::1/8" has host bits set; did you mean fd00::/8?');
    expect(() => parseCidr('10.0.0.1/8')).toThrow('"10.0.0.1/8" has host bits set; did you mean 10.0.0.0/8?');
  });

  it('refuses CIDRs it cannot read, naming the bad one', () => {
    expect(() => allow('10.0.0.1/8')).toThrow(/host bits set; did you mean 10\.0\.0\.0\/8/);
    expect(() => allow('10.0.0.0/33')).toThrow(/prefix length/);
    expect(() => allow('fd00::/129')).toThrow(/prefix length/);
    expect(() => allow('10.0.0.0/8,banana')).toThrow(/"banana"/);
    // The allow-list is configuration: only the strict dotted notation, no octal surprises.
    expect(() => allow('0177.0.0.1/32')).toThrow(/not an IPv4 or IPv6/);
    expect(() => allow('10.0.0.0/')).toThrow(/prefix length/);
  });
});

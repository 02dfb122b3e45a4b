// The reserved-range table of the SSRF address policy, range by range: an address at each end
// inside it, the addresses just outside both ends, and the reason a user reads in a 400 error or
// an attempt log. Then the IPv6 forms that embed an IPv4 address, each named in the reason.
//
// The policy module is imported inside the tests, not at the top of the file: its range tables
// are parsed when it loads, so a broken table or parser makes the import itself throw. A static
// import would turn that into a file that collects no tests, which Stryker's Vitest runner (9.6)
// counts as a surviving mutant (stryker-js#6150); an awaited import makes it a failing test.
import { describe, expect, it } from 'vitest';

const loading = import('../src/domain/address-policy.js');
loading.catch(() => undefined); // awaited in every test; this only keeps it from being "unhandled"
const policy = () => loading;

type Outside = [address: string, verdict: string];
interface Row {
  cidr: string;
  kind: string;
  reason: string;
  /** Addresses inside the range that it classifies (its ends, unless a more specific range holds them). */
  inside: string[];
  /** The neighbours just below and above, and their verdict: `allowed` or the kind they fall under. */
  outside: Outside[];
}

const V4: Row[] = [
  {
    cidr: '0.0.0.0/32',
    kind: 'unspecified',
    reason: 'the unspecified address',
    inside: ['0.0.0.0'],
    outside: [['0.0.0.1', 'this-network']],
  },
  {
    cidr: '0.0.0.0/8',
    kind: 'this-network',
    reason: 'a "this network" address (0.0.0.0/8)',
    inside: ['0.0.0.1', '0.255.255.255'],
    outside: [['1.0.0.0', 'allowed']],
  },
  {
    cidr: '10.0.0.0/8',
    kind: 'private',
    reason: 'a private address (RFC 1918)',
    inside: ['10.0.0.0', '10.255.255.255'],
    outside: [
      ['9.255.255.255', 'allowed'],
      ['11.0.0.0', 'allowed'],
    ],
  },
  {
    cidr: '100.64.0.0/10',
    kind: 'cgnat',
    reason: 'a carrier-grade NAT shared address (100.64.0.0/10)',
    inside: ['100.64.0.0', '100.127.255.255'],
    outside: [
      ['100.63.255.255', 'allowed'],
      ['100.128.0.0', 'allowed'],
    ],
  },
  {
    cidr: '127.0.0.0/8',
    kind: 'loopback',
    reason: 'a loopback address',
    inside: ['127.0.0.0', '127.255.255.255'],
    outside: [
      ['126.255.255.255', 'allowed'],
      ['128.0.0.0', 'allowed'],
    ],
  },
  {
    cidr: '169.254.169.254/32',
    kind: 'link-local',
    reason: 'a link-local address (the cloud metadata service)',
    inside: ['169.254.169.254'],
    outside: [
      ['169.254.169.253', 'link-local'],
      ['169.254.169.255', 'link-local'],
    ],
  },
  {
    cidr: '169.254.0.0/16',
    kind: 'link-local',
    reason: 'a link-local address',
    inside: ['169.254.0.0', '169.254.255.255'],
    outside: [
      ['169.253.255.255', 'allowed'],
      ['169.255.0.0', 'allowed'],
    ],
  },
  {
    cidr: '172.16.0.0/12',
    kind: 'private',
    reason: 'a private address (RFC 1918)',
    inside: ['172.16.0.0', '172.31.255.255'],
    outside: [
      ['172.15.255.255', 'allowed'],
      ['172.32.0.0', 'allowed'],
    ],
  },
  {
    cidr: '192.0.0.0/24',
    kind: 'ietf-protocol',
    reason: 'an IETF protocol assignment (192.0.0.0/24)',
    inside: ['192.0.0.0', '192.0.0.255'],
    outside: [
      ['191.255.255.255', 'allowed'],
      ['192.0.1.0', 'allowed'],
    ],
  },
  {
    cidr: '192.0.2.0/24',
    kind: 'documentation',
    reason: 'a documentation address (192.0.2.0/24)',
    inside: ['192.0.2.0', '192.0.2.255'],
    outside: [
      ['192.0.1.255', 'allowed'],
      ['192.0.3.0', 'allowed'],
    ],
  },
  {
    cidr: '192.88.99.0/24',
    kind: 'reserved',
    reason: 'a reserved address (the retired 6to4 relay anycast, 192.88.99.0/24)',
    inside: ['192.88.99.0', '192.88.99.255'],
    outside: [
      ['192.88.98.255', 'allowed'],
      ['192.88.100.0', 'allowed'],
    ],
  },
  {
    cidr: '192.168.0.0/16',
    kind: 'private',
    reason: 'a private address (RFC 1918)',
    inside: ['192.168.0.0', '192.168.255.255'],
    outside: [
      ['192.167.255.255', 'allowed'],
      ['192.169.0.0', 'allowed'],
    ],
  },
  {
    cidr: '198.18.0.0/15',
    kind: 'benchmarking',
    reason: 'a benchmarking address (198.18.0.0/15)',
    inside: ['198.18.0.0', '198.19.255.255'],
    outside: [
      ['198.17.255.255', 'allowed'],
      ['198.20.0.0', 'allowed'],
    ],
  },
  {
    cidr: '198.51.100.0/24',
    kind: 'documentation',
    reason: 'a documentation address (198.51.100.0/24)',
    inside: ['198.51.100.0', '198.51.100.255'],
    outside: [
      ['198.51.99.255', 'allowed'],
      ['198.51.101.0', 'allowed'],
    ],
  },
  {
    cidr: '203.0.113.0/24',
    kind: 'documentation',
    reason: 'a documentation address (203.0.113.0/24)',
    inside: ['203.0.113.0', '203.0.113.255'],
    outside: [
      ['203.0.112.255', 'allowed'],
      ['203.0.114.0', 'allowed'],
    ],
  },
  {
    cidr: '224.0.0.0/4',
    kind: 'multicast',
    reason: 'a multicast address',
    inside: ['224.0.0.0', '239.255.255.255'],
    outside: [
      ['223.255.255.255', 'allowed'],
      ['240.0.0.0', 'reserved'],
    ],
  },
  {
    cidr: '255.255.255.255/32',
    kind: 'broadcast',
    reason: 'the broadcast address',
    inside: ['255.255.255.255'],
    outside: [['255.255.255.254', 'reserved']],
  },
  {
    cidr: '240.0.0.0/4',
    kind: 'reserved',
    reason: 'a reserved address (240.0.0.0/4)',
    inside: ['240.0.0.0', '255.255.255.254'],
    outside: [
      ['239.255.255.255', 'multicast'],
      ['255.255.255.255', 'broadcast'],
    ],
  },
];

const ONES = 'ffff:ffff:ffff:ffff';
const V6: Row[] = [
  {
    cidr: '::/128',
    kind: 'unspecified',
    reason: 'the IPv6 unspecified address',
    inside: ['::'],
    outside: [['::1', 'loopback']],
  },
  {
    cidr: '::1/128',
    kind: 'loopback',
    reason: 'the IPv6 loopback address',
    inside: ['::1'],
    outside: [['::2', 'this-network']], // ::2 is the IPv4-compatible form of 0.0.0.2
  },
  {
    cidr: '100::/64',
    kind: 'reserved',
    reason: 'a discard-only address (100::/64)',
    inside: ['100::', `100::${ONES}`],
    outside: [
      [`ff:ffff:${ONES}:ffff:ffff`, 'not-global-unicast'],
      ['100:0:0:1::', 'not-global-unicast'],
    ],
  },
  {
    cidr: '2001:2::/48',
    kind: 'benchmarking',
    reason: 'a benchmarking address (2001:2::/48)',
    inside: ['2001:2::', `2001:2:0:ffff:${ONES}`],
    outside: [
      [`2001:1:ffff:ffff:${ONES}`, 'allowed'],
      ['2001:2:1::', 'allowed'],
    ],
  },
  {
    cidr: '2001:10::/28',
    kind: 'reserved',
    reason: 'a reserved address (ORCHID, 2001:10::/28)',
    inside: ['2001:10::', `2001:1f:ffff:ffff:${ONES}`],
    outside: [
      [`2001:f:ffff:ffff:${ONES}`, 'allowed'],
      ['2001:20::', 'reserved'], // ORCHIDv2, next door
    ],
  },
  {
    cidr: '2001:20::/28',
    kind: 'reserved',
    reason: 'a reserved address (ORCHIDv2, 2001:20::/28)',
    inside: ['2001:20::', `2001:2f:ffff:ffff:${ONES}`],
    outside: [
      [`2001:1f:ffff:ffff:${ONES}`, 'reserved'], // ORCHID, next door
      ['2001:30::', 'allowed'],
    ],
  },
  {
    cidr: '2001:db8::/32',
    kind: 'documentation',
    reason: 'a documentation address (2001:db8::/32)',
    inside: ['2001:db8::', `2001:db8:ffff:ffff:${ONES}`],
    outside: [
      [`2001:db7:ffff:ffff:${ONES}`, 'allowed'],
      ['2001:db9::', 'allowed'],
    ],
  },
  {
    cidr: '3fff::/20',
    kind: 'documentation',
    reason: 'a documentation address (3fff::/20)',
    inside: ['3fff::', `3fff:fff:ffff:ffff:${ONES}`],
    outside: [
      [`3ffe:ffff:ffff:ffff:${ONES}`, 'allowed'],
      ['3fff:1000::', 'allowed'],
    ],
  },
  {
    cidr: 'fc00::/7',
    kind: 'unique-local',
    reason: 'an IPv6 unique local address (fc00::/7)',
    inside: ['fc00::', `fdff:ffff:ffff:ffff:${ONES}`],
    outside: [
      [`fbff:ffff:ffff:ffff:${ONES}`, 'not-global-unicast'],
      ['fe00::', 'not-global-unicast'],
    ],
  },
  {
    cidr: 'fe80::/10',
    kind: 'link-local',
    reason: 'an IPv6 link-local address',
    inside: ['fe80::', `febf:ffff:ffff:ffff:${ONES}`],
    outside: [
      [`fe7f:ffff:ffff:ffff:${ONES}`, 'not-global-unicast'],
      ['fec0::', 'site-local'],
    ],
  },
  {
    cidr: 'fec0::/10',
    kind: 'site-local',
    reason: 'an IPv6 site-local address (fec0::/10)',
    inside: ['fec0::', `feff:ffff:ffff:ffff:${ONES}`],
    outside: [
      [`febf:ffff:ffff:ffff:${ONES}`, 'link-local'],
      ['ff00::', 'multicast'],
    ],
  },
  {
    cidr: 'ff00::/8',
    kind: 'multicast',
    reason: 'an IPv6 multicast address',
    inside: ['ff00::', `ffff:ffff:ffff:ffff:${ONES}`],
    outside: [[`feff:ffff:ffff:ffff:${ONES}`, 'site-local']],
  },
];

const rows = (table: Row[]) => table.map((row) => [row.cidr, row] as const);

describe.each([
  ['IPv4', V4],
  ['IPv6', V6],
])('the %s reserved ranges', (_family, table) => {
  it.each(rows(table))('%s: refused inside, with its reason; its neighbours are not it', async (_cidr, row) => {
    const { checkAddress } = await policy();
    for (const address of row.inside) {
      expect(checkAddress(address), address).toEqual({ allowed: false, address, kind: row.kind, reason: row.reason });
    }
    for (const [address, verdict] of row.outside) {
      const got = checkAddress(address);
      expect(got.allowed ? 'allowed' : got.kind, address).toBe(verdict);
      if (!got.allowed) expect(got.reason, address).not.toBe(row.reason);
    }
  });
});

it('allows global unicast IPv6 addresses, and nothing outside 2000::/3', async () => {
  const { checkAddress } = await policy();
  const outside = { allowed: false, kind: 'not-global-unicast' };
  expect(checkAddress('2000::')).toMatchObject({ allowed: true });
  expect(checkAddress(`3fff:ffff:ffff:ffff:${ONES}`)).toMatchObject({ allowed: true });
  expect(checkAddress(`1fff:ffff:ffff:ffff:${ONES}`)).toMatchObject(outside);
  expect(checkAddress('4000::')).toMatchObject({
    ...outside,
    reason: 'not a global unicast IPv6 address (outside 2000::/3)',
  });
});

describe('IPv6 forms that embed an IPv4 address', () => {
  // [IPv6 host, the form, the embedded IPv4 address it is refused for]
  const FORMS: [string, string, string, string][] = [
    ['::ffff:10.1.2.3', 'ipv4-mapped', 'an IPv4-mapped form', '10.1.2.3'],
    ['::10.1.2.3', 'ipv4-compatible', 'an IPv4-compatible form', '10.1.2.3'],
    ['::ffff:0:10.1.2.3', 'ipv4-translated', 'an IPv4-translated form', '10.1.2.3'],
    ['64:ff9b::10.1.2.3', 'nat64', 'a NAT64 form', '10.1.2.3'],
    ['64:ff9b:1::10.1.2.3', 'nat64', 'a NAT64 form', '10.1.2.3'],
    ['2002:a01:203::1', '6to4', 'a 6to4 form', '10.1.2.3'],
    // Teredo: the server in bits 32-63, the client bit-inverted in the last 32 bits
    ['2001:0:a01:203::', 'teredo', 'a Teredo form', '10.1.2.3'],
    ['2001:0:808:808:0:0:f5fe:fdfc', 'teredo', 'a Teredo form', '10.1.2.3'],
  ];

  it.each(FORMS)('%s is %s of %s, named in the reason', async (host, via, name, inner) => {
    const { checkAddress } = await policy();
    expect(checkAddress(host)).toMatchObject({
      allowed: false,
      kind: 'private',
      reason: `${name} of ${inner}, a private address (RFC 1918)`,
      embedded: { via, address: inner },
    });
  });

  it('allows the public-address forms whose prefix is routed as such, refuses the rest with their own reason', async () => {
    const { checkAddress } = await policy();
    for (const host of ['::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1', '2001:0:808:808::f7f7:f7f7']) {
      expect(checkAddress(host), host).toMatchObject({ allowed: true, allowListed: false });
    }
    expect(checkAddress('::8.8.8.8')).toEqual({
      allowed: false,
      address: '::808:808',
      kind: 'reserved',
      reason: 'a deprecated IPv4-compatible address (::/96)',
    });
    expect(checkAddress('64:ff9b:1::8.8.8.8')).toEqual({
      allowed: false,
      address: '64:ff9b:1::808:808',
      kind: 'reserved',
      reason: 'a local-use NAT64 address (64:ff9b:1::/48) whose IPv4 destination is network-specific',
    });
    expect(checkAddress('::ffff:0:8.8.8.8')).toMatchObject({ allowed: false, kind: 'not-global-unicast' });
  });

  it('reads :: and ::1 as themselves, not as IPv4-compatible forms of 0.0.0.0 and 0.0.0.1', async () => {
    const { checkAddress } = await policy();
    expect(checkAddress('::')).toEqual({
      allowed: false,
      address: '::',
      kind: 'unspecified',
      reason: 'the IPv6 unspecified address',
    });
    expect(checkAddress('::1')).toEqual({
      allowed: false,
      address: '::1',
      kind: 'loopback',
      reason: 'the IPv6 loopback address',
    });
  });

  it('refuses an IPv4-mapped form of every reserved IPv4 range, with that range’s reason', async () => {
    const { checkAddress } = await policy();
    for (const row of V4) {
      for (const inner of row.inside) {
        expect(checkAddress(`::ffff:${inner}`), inner).toMatchObject({
          allowed: false,
          kind: row.kind,
          reason: `an IPv4-mapped form of ${inner}, ${row.reason}`,
        });
      }
    }
  });
});

#!/usr/bin/env node
// `npm run mutate [-- group…]`: mutation testing with StrykerJS (stryker.config.mjs), one run per
// group of modules, each against the test files that exercise that group in process. Running every
// test file for every mutant would take hours on two cores; a group's own tests take minutes.
// Prints each module's score at the end and writes reports/mutation/<group>.json and .html.
// `--check` exits 1 when a module scores under GOAL.
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const GOAL = 85;

export const GROUPS = {
  domain: {
    what: 'the domain rules',
    mutate: [
      'src/domain/retry-policy.ts',
      'src/domain/classify.ts',
      'src/domain/signing.ts',
      'src/domain/address-policy.ts',
      'src/domain/audit-chain.ts',
      'src/domain/rate-limit.ts',
      'src/domain/secret-box.ts',
    ],
    tests: [
      'test/domain.test.ts',
      'test/domain.input.test.ts',
      'test/ssrf.address-policy.test.ts',
      'test/ssrf.address-policy.table.test.ts',
      'test/audit-chain.test.ts',
      'test/classify.test.ts',
    ],
  },
  transitions: {
    what: 'delivery state transitions',
    mutate: ['src/delivery/attempt-outcome.ts'],
    tests: ['test/delivery.e2e.test.ts', 'test/delivery.basic.test.ts'],
  },
  claims: {
    what: 'claiming and leases',
    mutate: [
      'src/store/queue/claim-rows.ts',
      'src/store/queue/renew.ts',
      'src/store/queue/release.ts',
      'src/delivery/lease-keeper.ts',
    ],
    tests: ['test/store.contract.test.ts', 'test/delivery.operability.test.ts'],
  },
  auth: {
    what: 'auth and scopes',
    mutate: ['src/api/auth.ts', 'src/domain/tokens.ts'],
    tests: ['test/auth.test.ts', 'test/security.scopes.test.ts', 'test/security.test.ts', 'test/domain.test.ts'],
  },
};

const args = process.argv.slice(2);
const check = args.includes('--check');
const names = args.filter((a) => !a.startsWith('--'));
for (const name of names) {
  if (!(name in GROUPS)) {
    console.error(`mutate: unknown group "${name}"; groups: ${Object.keys(GROUPS).join(', ')}`);
    process.exit(2);
  }
}
const chosen = names.length > 0 ? names : Object.keys(GROUPS);
const out = 'reports/mutation';
mkdirSync(out, { recursive: true });

let failed = false;
for (const name of chosen) {
  const group = GROUPS[name];
  console.log(`\n== ${name}: ${group.what} (${group.mutate.length} modules, tests: ${group.tests.join(' ')})`);
  const run = spawnSync('npx', ['stryker', 'run', '--mutate', group.mutate.join(',')], {
    stdio: 'inherit',
    // SQLite only: the dialect suites' PostgreSQL half would double every mutant's run.
    env: { ...process.env, COUNTERSIGN_MUTATE_TESTS: group.tests.join(','), COUNTERSIGN_TEST_DATABASE_URL: '' },
  });
  if (run.status !== 0) {
    console.error(`mutate: stryker failed on group ${name} (exit ${run.status})`);
    failed = true;
    continue;
  }
  for (const ext of ['json', 'html']) copyFileSync(join(out, `mutation.${ext}`), join(out, `${name}.${ext}`));
}

// The scores, per module, from every group's report there is.
console.log('\nmodule                                   killed  survived  no cov.  score');
let under = false;
for (const name of Object.keys(GROUPS)) {
  const file = join(out, `${name}.json`);
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, 'utf8'));
  for (const [path, { mutants }] of Object.entries(report.files)) {
    const count = (...statuses) => mutants.filter((m) => statuses.includes(m.status)).length;
    const killed = count('Killed', 'Timeout');
    const survived = count('Survived');
    const uncovered = count('NoCoverage');
    const valid = killed + survived + uncovered;
    const score = valid === 0 ? 100 : (100 * killed) / valid;
    if (score < GOAL) under = true;
    console.log(
      `${path.padEnd(40)} ${String(killed).padStart(6)}  ${String(survived).padStart(8)}  ${String(uncovered).padStart(7)}  ${score.toFixed(1).padStart(5)} %`,
    );
  }
}
if (failed || (check && under)) process.exit(1);

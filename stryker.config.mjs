// Mutation testing (`npm run mutate`): StrykerJS changes the code whose mistakes cost most, one
// small change at a time, and runs the tests that cover it; a change no test notices is a gap in
// the tests. Modules and scores: "Mutation testing" in README.md. `npm run mutate -- --mutate
// src/domain/signing.ts` runs one module.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    // The domain rules.
    'src/domain/retry-policy.ts',
    'src/domain/classify.ts',
    'src/domain/signing.ts',
    'src/domain/address-policy.ts',
    'src/domain/audit-chain.ts',
    'src/domain/rate-limit.ts',
    'src/domain/secret-box.ts',
    // Delivery state transitions.
    'src/domain/delivery-status.ts',
    'src/delivery/attempt-outcome.ts',
    // Claiming and leases.
    'src/delivery/lease-keeper.ts',
    'src/store/queue/claim-rows.ts',
    'src/store/queue/renew.ts',
    'src/store/queue/release.ts',
    // Auth and scopes.
    'src/api/auth.ts',
    'src/domain/tokens.ts',
  ],
  concurrency: 2,
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 85, break: null },
};

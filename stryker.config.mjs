// Mutation testing: StrykerJS changes the code whose mistakes cost most, one small change at a
// time, and runs the tests that cover it; a change no test notices is a gap in the tests. Run it
// with `npm run mutate` (scripts/mutate.mjs), which names the modules and their tests group by
// group. Scores: "Mutation testing" in README.md.
/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.mutate.config.ts' },
  coverageAnalysis: 'perTest',
  concurrency: 2,
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress-append-only', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  tempDirName: '.stryker-tmp',
  // Not copied into the sandbox: other runs' temp dirs (which may vanish mid-copy) and reports.
  ignorePatterns: ['/.stryker-tmp*', '/reports'],
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 85, break: null },
};

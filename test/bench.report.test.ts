// The benchmark's report is arithmetic and wording over the scenarios' figures: ratios paired by
// round, what each throughput goal leaves countersign beside the floor, and goal rows that say
// what was measured. Tested with plain figures; the benchmark itself runs with `npm run bench`.
import { describe, expect, it } from 'vitest';
import {
  type BenchResult,
  budgets,
  goals,
  markdown,
  pairedRatio,
  type RunFigures,
  ratios,
  type ScenarioEntry,
} from '../bench/report.mjs';

function entry(key: string, runs: RunFigures[], median: RunFigures = runs[0] ?? {}): ScenarioEntry {
  return { id: '3', key, title: `title of ${key}`, runs, median, interleaved: true };
}

const rates = (...perRound: number[]) => perRound.map((deliveriesPerSec) => ({ deliveriesPerSec }));

function byKey(...entries: ScenarioEntry[]): Record<string, ScenarioEntry> {
  return Object.fromEntries(entries.map((e) => [e.key, e]));
}

describe('benchmark report', () => {
  it('pairs interleaved runs round by round: the median of per-round ratios, not the ratio of medians', () => {
    const a = entry('sqlite', rates(10, 30, 20), { deliveriesPerSec: 20 });
    const b = entry('ceiling', rates(20, 20, 40), { deliveriesPerSec: 20 });
    // Per round: 0.5, 1.5, 0.5.
    expect(pairedRatio(a, b)).toBe(0.5);
    expect(pairedRatio({ ...a, interleaved: false }, b)).toBe(1);
  });

  it('compares every countersign pipeline with the bare durable relay, and the relay with the ceiling and BullMQ', () => {
    const rows = ratios(
      byKey(
        entry('ceiling', rates(20_000, 22_000, 18_000), { deliveriesPerSec: 20_000 }),
        entry('bullmq', rates(4_000, 5_000, 4_500), { deliveriesPerSec: 4_500 }),
        entry('sqlite', rates(5_000, 5_500, 4_500), { deliveriesPerSec: 5_000 }),
        entry('relay-floor', rates(8_000, 11_000, 9_000), { deliveriesPerSec: 9_000 }),
      ),
    );
    expect(rows.map((r) => r.key)).toEqual(['sqlite', 'relay-floor']);
    const [sqlite, relay] = rows;
    expect(sqlite?.ofRelayFloor).toBeCloseTo(0.5, 5); // 0.625, 0.5, 0.5
    expect(sqlite?.ofCeiling).toBeCloseTo(0.25, 5); // 0.25, 0.25, 0.25
    expect(relay?.ofCeiling).toBeCloseTo(0.5, 5); // 0.4, 0.5, 0.5
    expect(relay?.ofBullmq).toBe(2); // 2, 2.2, 2
    expect(relay?.ofRelayFloor).toBeUndefined();
  });

  it('says how much a drain stopped at the cap drained beside the RSS goal', () => {
    const drain = (runs: RunFigures[], median: RunFigures) => goals(byKey(entry('backlog', runs, median))).at(-1);
    const capped = drain([{ partial: true }, { partial: true }, { partial: true }], {
      deliveries: 1_000_000,
      received: 481_893,
      peakRssMB: 188.2,
    });
    expect(capped?.shown).toBe('188 MB (while the first 481,893 drained)');
    expect(capped?.met).toBe(true);

    const whole = drain([{ partial: false }], { deliveries: 1_000_000, received: 1_000_000, peakRssMB: 187 });
    expect(whole?.shown).toBe('187 MB');

    const quick = drain([{ partial: false }], { deliveries: 100_000, received: 100_000, peakRssMB: 183 });
    expect(quick?.goal).toBe('Peak RSS while draining 100,000 (not the 1M of the goal)');
    expect(quick?.met).toBeUndefined();
  });

  it('puts the floor beside what each throughput goal leaves countersign', () => {
    const harness = { loadCpuUs: 50, receiverCpuUs: 40 };
    const rows = budgets(
      byKey(
        entry('ceiling', rates(20_000)),
        entry('sqlite', [{ deliveriesPerSec: 5_000, cpuUsPerDelivery: 200, machineCpuUs: 300, ...harness }]),
        entry('relay-floor', [{ deliveriesPerSec: 8_000, cpuUsPerDelivery: 110 }]),
        entry('sqlite-publish', [{ publishPerSec: 10_000, cpuUsPerEvent: 90, machineCpuUs: 135, loadCpuUs: 45 }]),
        entry('relay-floor-publish', [{ publishPerSec: 20_000, cpuUsPerEvent: 50 }]),
      ),
      2,
    );
    const endToEnd = rows.find((r) => r.goal === 'SQLite end to end ≥ 20,000/s');
    // 2 cores at 20,000/s: 100 µs each; the harness takes 90.
    expect(endToEnd).toMatchObject({ machineUs: 100, harnessUs: 90, leftUs: 10, floorUs: 110, countersignUs: 200 });
    expect(endToEnd?.restUs).toBe(10);
    const half = rows.find((r) => r.goal === 'SQLite ≥ 50 % of the ceiling');
    expect(half).toMatchObject({ rate: 10_000, machineUs: 200, leftUs: 110, floorUs: 110 });
    const publishing = rows.find((r) => r.goal === 'Publishing ≥ 20,000 events/s');
    expect(publishing?.floorUs).toBe(50);
    expect(publishing?.countersignUs).toBe(90);
    // No BullMQ run, no PostgreSQL run: no rows for their goals.
    expect(rows.map((r) => r.goal)).toHaveLength(3);
  });

  it('prints the relay beside countersign in the ratio table, with a sentence saying how far it got', () => {
    const scenarios = [
      entry('ceiling', rates(20_000)),
      entry('sqlite', rates(5_000)),
      entry('relay-floor', rates(8_000)),
    ];
    const keyed = byKey(...scenarios);
    const result: BenchResult = {
      date: '2026-12-02T00:00:00.000Z',
      machine: { cpu: 'a CPU', cores: 2, memoryGB: 24, platform: 'linux', kernel: '6', node: 'v20' },
      scenarios,
      ratios: ratios(keyed),
      goals: goals(keyed),
      budgets: budgets(keyed, 2),
    };
    const text = markdown(result);
    expect(text).toContain('| title of sqlite | 5,000 | 25 % | — | 63 % |');
    expect(text).toContain('| title of relay-floor | 8,000 | 40 % | — | — |');
    expect(text).toContain('reached 40 % of the ceiling in the same rounds');
  });

  it('prices the access log: publishing with it against publishing with COUNTERSIGN_ACCESS_LOG=off', () => {
    const scenarios = [
      entry(
        'sqlite-publish',
        [
          { publishPerSec: 8_000, cpuUsPerEvent: 130 },
          { publishPerSec: 9_000, cpuUsPerEvent: 112 },
          { publishPerSec: 9_500, cpuUsPerEvent: 100 },
        ],
        { publishPerSec: 9_000, cpuUsPerEvent: 112 },
      ),
      entry(
        'sqlite-publish-no-access-log',
        [
          { publishPerSec: 9_900, cpuUsPerEvent: 104 },
          { publishPerSec: 9_000, cpuUsPerEvent: 115 },
          { publishPerSec: 10_500, cpuUsPerEvent: 90 },
        ],
        { publishPerSec: 9_900, cpuUsPerEvent: 104 },
      ),
    ];
    const keyed = byKey(...scenarios);
    const text = markdown({
      date: '2026-12-02T00:00:00.000Z',
      machine: { cpu: 'a CPU', cores: 2, memoryGB: 24, platform: 'linux', kernel: '6', node: 'v20' },
      scenarios,
      ratios: ratios(keyed),
      goals: goals(keyed),
      budgets: budgets(keyed, 2),
    });
    expect(text).toContain(
      'The access log (one line per request, on by default) costs 10 µs of CPU per publish, the median of the per-round differences (26, -3, 10 µs): 112 µs and 9,000 publishes/s with it, 104 µs and 9,900/s with COUNTERSIGN_ACCESS_LOG=off (medians).',
    );
  });
});

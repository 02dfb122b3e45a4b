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
      peakRssMB: 148.2,
    });
    expect(capped?.shown).toBe('148 MB (while the first 481,893 drained)');
    expect(capped?.met).toBe(true);

    const whole = drain([{ partial: false }], { deliveries: 1_000_000, received: 1_000_000, peakRssMB: 187 });
    expect(whole?.shown).toBe('187 MB');
    expect(whole?.met).toBe(false);

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
        entry('sqlite-batch', [{ deliveriesPerSec: 9_000, cpuUsPerDelivery: 120, machineCpuUs: 230, ...harness }]),
        entry('relay-floor', [{ deliveriesPerSec: 12_500, cpuUsPerDelivery: 110 }]),
        entry('sqlite-publish', [{ publishPerSec: 10_000, cpuUsPerEvent: 90, machineCpuUs: 135, loadCpuUs: 45 }]),
        entry('relay-floor-publish', [{ publishPerSec: 20_000, cpuUsPerEvent: 50 }]),
      ),
      2,
    );
    const single = rows.find((r) => r.goal === 'Single-event publishes ≥ 80 % of the relay');
    // 80 % of 12,500/s is 10,000/s: 2 cores give 200 µs each; the harness takes 90.
    expect(single).toMatchObject({ rate: 10_000, machineUs: 200, harnessUs: 90, leftUs: 110, floorUs: 110 });
    expect(single).toMatchObject({ countersignUs: 200, restUs: 10 });
    const batched = rows.find((r) => r.goal === 'Batched publishes ≥ 60 % of the ceiling');
    expect(batched).toMatchObject({ rate: 12_000, countersignUs: 120, floorUs: 110 });
    const publishing = rows.find((r) => r.goal === 'Publishing ≥ 80 % of the relay’s publish floor');
    expect(publishing).toMatchObject({ rate: 16_000, floorUs: 50, countersignUs: 90 });
    // No BullMQ runs, no batched publish-only run: no rows for their goals.
    expect(rows.map((r) => r.goal)).toHaveLength(3);
  });

  it('states each goal as a ratio within the run, paired by round', () => {
    const rows = goals(
      byKey(
        entry('ceiling', rates(20_000, 10_000)),
        entry('bullmq', rates(2_000, 1_000)),
        entry('bullmq-http', rates(1_000, 1_000)),
        entry('sqlite', rates(4_000, 4_000)),
        entry('sqlite-batch', rates(12_000, 7_000)),
        entry('relay-floor', rates(5_000, 5_000)),
        entry('sqlite-publish', [{ publishPerSec: 6_000 }, { publishPerSec: 8_000 }], { publishPerSec: 7_000 }),
        entry('sqlite-batch-publish', [{ publishPerSec: 40_000 }, { publishPerSec: 44_000 }], {
          publishPerSec: 42_000,
        }),
        entry('relay-floor-publish', [{ publishPerSec: 10_000 }, { publishPerSec: 10_000 }], { publishPerSec: 10_000 }),
        entry(
          'postgres',
          [
            { deliveriesPerSec: 2_000, cpuUsPerDelivery: 400 },
            { deliveriesPerSec: 2_000, cpuUsPerDelivery: 400 },
          ],
          { deliveriesPerSec: 2_000, cpuUsPerDelivery: 400 },
        ),
        entry(
          'postgres-3w',
          [
            { deliveriesPerSec: 1_500, cpuUsPerDelivery: 800 },
            { deliveriesPerSec: 1_300, cpuUsPerDelivery: 880 },
          ],
          { deliveriesPerSec: 1_400, cpuUsPerDelivery: 840 },
        ),
      ),
    );
    const by = Object.fromEntries(rows.map((r) => [r.goal, r]));
    expect(by['Single-event publishes end to end, SQLite ÷ bare durable relay']).toMatchObject({
      shown: '80 %',
      met: true,
    });
    expect(by['Single-event publishes end to end, SQLite ÷ bullmq-http']).toMatchObject({ measured: 4, met: true });
    // Per round: 12,000 ÷ 20,000 and 7,000 ÷ 10,000.
    expect(by['Batched publishes end to end, SQLite ÷ ceiling']?.measured).toBeCloseTo(0.65, 5);
    expect(by['Batched publishes end to end, SQLite ÷ bullmq']).toMatchObject({ measured: 6.5, met: true });
    expect(by['Single-event publishing alone, SQLite ÷ the relay’s publish floor']).toMatchObject({
      measured: 0.7,
      met: false,
    });
    expect(by['Batched publishing alone, SQLite ÷ the relay’s single-event publish floor, events/s']).toMatchObject({
      measured: 4.2,
      met: true,
    });
    expect(by['PostgreSQL, API + 3 workers ÷ 1 process, deliveries/s']).toMatchObject({ measured: 0.7, met: false });
    expect(by['PostgreSQL, API + 3 workers ÷ 1 process, CPU per delivery']?.measured).toBeCloseTo(2.1, 5);
    expect(rows.at(-1)?.target).toBe('≤ 150 MB');
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

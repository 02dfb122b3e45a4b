// Types for report.mjs, so the TypeScript tests can check the report's arithmetic and wording.

/** One run's figures (or the medians of several), as the scenarios return them. */
export interface RunFigures {
  deliveriesPerSec?: number;
  publishPerSec?: number;
  cpuUsPerDelivery?: number;
  cpuUsPerEvent?: number;
  loadCpuUs?: number;
  receiverCpuUs?: number;
  machineCpuUs?: number;
  peakRssMB?: number;
  deliveries?: number;
  received?: number;
  partial?: boolean;
  p99Ms?: number;
  [figure: string]: unknown;
}

export interface ScenarioEntry {
  id: string;
  key: string;
  title: string;
  runs: RunFigures[];
  median?: RunFigures;
  interleaved?: boolean;
  error?: string;
  incomplete?: string;
}

export interface GoalRow {
  goal: string;
  target: string;
  measured: number | undefined;
  shown: string;
  met: boolean | undefined;
}

export interface RatioRow {
  key: string;
  scenario: string;
  deliveriesPerSec: number;
  ofCeiling: number | undefined;
  ofBullmq: number | undefined;
  ofRelayFloor: number | undefined;
}

export interface BudgetRow {
  goal: string;
  rate: number;
  machineUs: number;
  harnessUs: number;
  leftUs: number;
  countersignUs: number | undefined;
  floorUs: number | undefined;
  restUs: number;
}

export interface BenchResult {
  date: string;
  quick?: boolean;
  commit?: string;
  machine: { cpu: string; cores: number; memoryGB: number; platform: string; kernel: string; node: string };
  scenarios: ScenarioEntry[];
  ratios: RatioRow[];
  goals: GoalRow[];
  budgets: BudgetRow[];
}

export function pairedRatio(
  a: ScenarioEntry | undefined,
  b: ScenarioEntry | undefined,
  field?: keyof RunFigures,
): number | undefined;
export function goals(byKey: Record<string, ScenarioEntry>): GoalRow[];
export function ratios(byKey: Record<string, ScenarioEntry>): RatioRow[];
export function budgets(byKey: Record<string, ScenarioEntry>, cores: number): BudgetRow[];
export function accessLogPrice(
  withLog: ScenarioEntry | undefined,
  without: ScenarioEntry | undefined,
): { us: number; rounds: number[]; withLog: RunFigures; without: RunFigures } | undefined;
export function markdown(result: BenchResult): string;

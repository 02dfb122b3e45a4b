// The benchmark's report: ratios and goals computed from the scenario medians, and the Markdown
// printed on stdout (the same table the README's Performance section shows).
import { fmt, median } from './lib/stats.mjs';

/**
 * a ÷ b in deliveries/s (or another figure of the runs, such as publishPerSec). When both ran in the same rounds (interleaved), the median of the
 * per-round ratios: each compares runs made minutes apart at most, on a machine whose speed
 * drifts. Otherwise the ratio of the medians.
 */
export function pairedRatio(a, b, field = 'deliveriesPerSec') {
  const rate = (r) => r?.[field];
  if (a?.interleaved && b?.interleaved && a.runs?.length === b.runs?.length && a.runs.length > 0) {
    return median(a.runs.map((run, i) => (rate(run) && rate(b.runs[i]) ? rate(run) / rate(b.runs[i]) : undefined)));
  }
  const x = rate(a?.median);
  const y = rate(b?.median);
  return x && y ? x / y : undefined;
}

/**
 * What the access log costs per publish: the median of the per-round differences in CPU per event
 * between publishing with it and with it off (rounds pair runs made minutes apart; two medians
 * taken apart would mix the machine's drift into the difference).
 */
export function accessLogPrice(withEntry, withoutEntry) {
  const withLog = withEntry?.median;
  const without = withoutEntry?.median;
  if (withLog?.cpuUsPerEvent === undefined || without?.cpuUsPerEvent === undefined) return undefined;
  const paired = withEntry.runs?.length === withoutEntry.runs?.length ? withEntry.runs : [];
  const rounds = paired
    .map((run, i) => {
      const a = run?.cpuUsPerEvent;
      const b = withoutEntry.runs[i]?.cpuUsPerEvent;
      return a === undefined || b === undefined ? undefined : a - b;
    })
    .filter((d) => d !== undefined);
  const us = rounds.length > 0 ? median(rounds) : withLog.cpuUsPerEvent - without.cpuUsPerEvent;
  return { us: us === 0 ? 0 : us, rounds, withLog, without };
}

/**
 * The design's goals (issue 16), each a ratio within one run against what the benchmark measures
 * beside countersign. Reported next to what was measured; never used to tune anything.
 */
export function goals(byKey) {
  const backlog = byKey.backlog;
  const ratio = (a, b, field) => pairedRatio(byKey[a], byKey[b], field);
  const percent = (v) => (v === undefined ? '—' : `${fmt(100 * v, 0)} %`);
  const times = (v) => (v === undefined ? '—' : `${fmt(v)}×`);
  const full = backlog?.median?.deliveries === 1_000_000;
  const latency = byKey.latency?.median;
  const row = (goal, target, measured, shown, test) => ({ goal, target, measured, shown, met: check(measured, test) });
  return [
    row(
      'Single-event publishes end to end, SQLite ÷ bare durable relay',
      '≥ 80 %',
      ratio('sqlite', 'relay-floor'),
      percent(ratio('sqlite', 'relay-floor')),
      (v) => v >= 0.8,
    ),
    row(
      'Single-event publishes end to end, SQLite ÷ bullmq-http',
      '≥ 2×',
      ratio('sqlite', 'bullmq-http'),
      times(ratio('sqlite', 'bullmq-http')),
      (v) => v >= 2,
    ),
    row(
      'Batched publishes end to end, SQLite ÷ ceiling',
      '≥ 60 %',
      ratio('sqlite-batch', 'ceiling'),
      percent(ratio('sqlite-batch', 'ceiling')),
      (v) => v >= 0.6,
    ),
    row(
      'Batched publishes end to end, SQLite ÷ bullmq',
      '≥ 3×',
      ratio('sqlite-batch', 'bullmq'),
      times(ratio('sqlite-batch', 'bullmq')),
      (v) => v >= 3,
    ),
    row(
      'Single-event publishing alone, SQLite ÷ the relay’s publish floor',
      '≥ 80 %',
      ratio('sqlite-publish', 'relay-floor-publish', 'publishPerSec'),
      percent(ratio('sqlite-publish', 'relay-floor-publish', 'publishPerSec')),
      (v) => v >= 0.8,
    ),
    row(
      'Batched publishing alone, SQLite ÷ the relay’s single-event publish floor, events/s',
      '≥ 4×',
      ratio('sqlite-batch-publish', 'relay-floor-publish', 'publishPerSec'),
      times(ratio('sqlite-batch-publish', 'relay-floor-publish', 'publishPerSec')),
      (v) => v >= 4,
    ),
    row(
      'PostgreSQL, API + 3 workers ÷ 1 process, deliveries/s',
      '≥ 1×',
      ratio('postgres-3w', 'postgres'),
      times(ratio('postgres-3w', 'postgres')),
      (v) => v >= 1,
    ),
    row(
      'PostgreSQL, API + 3 workers ÷ 1 process, CPU per delivery',
      '≤ 1.3×',
      ratio('postgres-3w', 'postgres', 'cpuUsPerDelivery'),
      times(ratio('postgres-3w', 'postgres', 'cpuUsPerDelivery')),
      (v) => v <= 1.3,
    ),
    {
      goal: 'p99 publish-to-receive at 1,000 events/s, over the first 10 s',
      target: '≤ 5 ms',
      measured: latency?.p99Ms,
      shown:
        `${fmt(latency?.p99Ms)} ms` +
        (latency?.p99SteadyMs === undefined
          ? ''
          : ` (from ${fmt(latency.steadyFromS, 0)} s on: ${fmt(latency.p99SteadyMs)} ms)`),
      met: check(latency?.p99Ms, (v) => v <= 5),
    },
    ...['same', 'other'].flatMap((where) => {
      const noisy = byKey[`neighbours-${where}`];
      const quiet = byKey[`neighbours-${where}-quiet`];
      const account = where === 'same' ? 'in its own account' : 'in another account';
      const rate = pairedRatio(noisy, quiet);
      const p99 = pairedRatio(noisy, quiet, 'p99Ms');
      return [
        row(
          `A healthy endpoint beside 60 bad ones ${account}: its deliveries/s ÷ the quiet run's`,
          '≥ 90 %',
          rate,
          percent(rate),
          (v) => v >= 0.9,
        ),
        row(
          `The same: its p99 publish-to-receipt ÷ the quiet run's`,
          '≤ 2×',
          p99,
          p99 === undefined
            ? '—'
            : `${fmt(p99)}× (${fmt(noisy?.median?.p99Ms)} against ${fmt(quiet?.median?.p99Ms)} ms)`,
          (v) => v <= 2,
        ),
        row(
          `The same: peak RSS`,
          '< 150 MB',
          noisy?.median?.peakRssMB,
          `${fmt(noisy?.median?.peakRssMB, 0)} MB`,
          (v) => v < 150,
        ),
      ];
    }),
    {
      goal: `Peak RSS while draining ${full || !backlog?.median ? '1M' : `${fmt(backlog?.median?.deliveries, 0)} (not the 1M of the goal)`}`,
      target: '≤ 150 MB',
      measured: backlog?.median?.peakRssMB,
      // A drain stopped at the cap measured only the part drained; say how much that was.
      shown:
        `${fmt(backlog?.median?.peakRssMB, 0)} MB` +
        (backlog?.runs?.some((r) => r.partial) ? ` (while the first ${fmt(backlog.median.received, 0)} drained)` : ''),
      met: full ? check(backlog?.median?.peakRssMB, (v) => v <= 150) : undefined,
    },
  ];
}

function check(value, test) {
  return value === undefined || Number.isNaN(value) ? undefined : test(value);
}

/**
 * countersign's deliveries/s against the ceiling, the BullMQ pipeline and the bare durable relay
 * (paired by round); the relay floor's own row shows how far any design that stores first gets.
 */
export function ratios(byKey) {
  return ['sqlite', 'sqlite-batch', 'postgres', 'postgres-3w', 'relay-floor']
    .filter((key) => byKey[key]?.median)
    .map((key) => ({
      key,
      scenario: byKey[key].title,
      deliveriesPerSec: byKey[key].median.deliveriesPerSec,
      ofCeiling: pairedRatio(byKey[key], byKey.ceiling),
      ofBullmq: pairedRatio(byKey[key], byKey.bullmq),
      ofRelayFloor: key === 'relay-floor' ? undefined : pairedRatio(byKey[key], byKey['relay-floor']),
    }));
}

/**
 * What each throughput goal leaves countersign of this machine. At a rate R on N cores, every
 * process together may spend N × 1 s ÷ R of CPU per delivery; the load generator and the receiver
 * (measured in the same runs, per delivery, at the rate reached) take their part of that first.
 * What remains is countersign's budget, beside what it used. The rest of the machine is what the
 * kernel's own threads, the PostgreSQL server or anything else busy spent in the same runs.
 */
export function budgets(byKey, cores) {
  const rows = [];
  const add = (goal, entry, rate, floor) => {
    const m = entry?.median;
    if (!m || !(rate > 0)) return;
    const machineUs = (cores * 1e6) / rate;
    const harnessUs = (m.loadCpuUs ?? Number.NaN) + (m.receiverCpuUs ?? Number.NaN);
    const countersignUs = m.cpuUsPerDelivery ?? m.cpuUsPerEvent;
    rows.push({
      goal,
      rate,
      machineUs,
      harnessUs,
      leftUs: machineUs - harnessUs,
      countersignUs,
      floorUs: floor?.median?.cpuUsPerDelivery ?? floor?.median?.cpuUsPerEvent,
      restUs: (m.machineCpuUs ?? Number.NaN) - harnessUs - (countersignUs ?? Number.NaN),
    });
  };
  const relay = byKey['relay-floor'];
  const publishFloor = byKey['relay-floor-publish'];
  const rateOf = (entry, field = 'deliveriesPerSec') => entry?.median?.[field] ?? Number.NaN;
  add('Single-event publishes ≥ 80 % of the relay', byKey.sqlite, 0.8 * rateOf(relay), relay);
  add('Single-event publishes ≥ 2× bullmq-http', byKey.sqlite, 2 * rateOf(byKey['bullmq-http']), relay);
  add('Batched publishes ≥ 60 % of the ceiling', byKey['sqlite-batch'], 0.6 * rateOf(byKey.ceiling), relay);
  add('Batched publishes ≥ 3× bullmq', byKey['sqlite-batch'], 3 * rateOf(byKey.bullmq), relay);
  add(
    'Publishing ≥ 80 % of the relay’s publish floor',
    byKey['sqlite-publish'],
    0.8 * rateOf(publishFloor, 'publishPerSec'),
    publishFloor,
  );
  add(
    'Batched publishing ≥ 4× the relay’s publish floor',
    byKey['sqlite-batch-publish'],
    4 * rateOf(publishFloor, 'publishPerSec'),
    publishFloor,
  );
  return rows;
}

function row(cells) {
  return `| ${cells.join(' | ')} |`;
}

export function markdown(result) {
  const { machine, scenarios } = result;
  const lines = [];
  lines.push(
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${fmt(machine.memoryGB, 1)} GB RAM, ${machine.platform} ${machine.kernel}, Node ${machine.node}. ` +
      `${result.date}${result.commit ? `, commit ${result.commit.slice(0, 12)}` : ''}${result.quick ? ', --quick run' : ''}. ` +
      'Each figure is the median of the runs shown.',
  );
  lines.push('');
  lines.push(
    row([
      '#',
      'Scenario',
      'Deliveries/s',
      'End to end (s)',
      'Publish/s',
      'p50 / p95 / p99 (ms)',
      'Peak RSS (MB)',
      'CPU µs each',
      'Runs',
    ]),
  );
  lines.push(row(['--', '--', '--:', '--:', '--:', '--:', '--:', '--:', '--:']));
  const notes = [];
  for (const s of scenarios) {
    const m = s.median ?? {};
    let flag = '';
    if (s.error) {
      flag = ` ⚠${notes.length + 1}`;
      notes.push(`failed: ${s.error.split('\n')[0]}`);
    } else if (s.incomplete) {
      flag = ` ⚠${notes.length + 1}`;
      notes.push(s.incomplete);
    }
    const latency = m.p99Ms === undefined ? '—' : `${fmt(m.p50Ms)} / ${fmt(m.p95Ms)} / ${fmt(m.p99Ms)}`;
    lines.push(
      row([
        s.id,
        `${s.title}${flag}`,
        fmt(m.deliveriesPerSec ?? m.drainPerSec),
        fmt(m.e2eSeconds ?? m.drainSeconds),
        fmt(m.publishPerSec ?? m.offeredPerSec),
        latency,
        fmt(m.peakRssMB, 0),
        fmt(m.cpuUsPerDelivery ?? m.cpuUsPerEvent, 0),
        String(s.runs?.length ?? 0),
      ]),
    );
  }
  for (const [i, note] of notes.entries()) lines.push('', `⚠${i + 1} ${note}`);
  const settled = scenarios.find((s) => s.key === 'latency')?.median;
  if (settled?.p99SteadyMs !== undefined) {
    lines.push(
      '',
      `The latency runs go on for ${fmt(settled.steadyFromS, 0)} s more at the same rate; ` +
        `the events sent from ${fmt(settled.steadyFromS, 0)} to ${fmt(settled.steadyToS, 0)} s, once countersign has run at this rate for a while, ` +
        `arrived with p50 / p95 / p99 of ${fmt(settled.p50SteadyMs)} / ${fmt(settled.p95SteadyMs)} / ${fmt(settled.p99SteadyMs)} ms (medians of the same runs).`,
    );
  }

  lines.push(
    '',
    'Ratios are medians of per-round ratios: the throughput scenarios (1 to 4) run in rounds, one run of each per round.',
    '',
    row(['Pipeline', 'Deliveries/s', '÷ ceiling', '÷ BullMQ', '÷ bare durable relay']),
    row(['--', '--:', '--:', '--:', '--:']),
  );
  const percent = (v) => (v === undefined ? '—' : `${fmt(100 * v, 0)} %`);
  for (const r of result.ratios) {
    lines.push(
      row([
        r.scenario,
        fmt(r.deliveriesPerSec),
        percent(r.ofCeiling),
        r.ofBullmq === undefined ? '—' : `${fmt(r.ofBullmq)}×`,
        percent(r.ofRelayFloor),
      ]),
    );
  }
  const relay = result.ratios.find((r) => r.key === 'relay-floor');
  if (relay?.ofCeiling !== undefined) {
    lines.push(
      '',
      `The bare durable relay (scenario relay-floor: store, answer, sign, send, record, and nothing else) reached ${percent(relay.ofCeiling)} of the ceiling` +
        (relay.ofBullmq === undefined ? '' : ` and ${fmt(relay.ofBullmq)}× BullMQ`) +
        ' in the same rounds: what a Node service that commits each event before it answers gets on this machine, before any of the work that makes it a product.',
    );
  }

  lines.push('', row(['Goal', 'Target', 'Measured', 'Met']), row(['--', '--', '--:', '--']));
  for (const g of result.goals) {
    lines.push(row([g.goal, g.target, g.shown, g.met === undefined ? '—' : g.met ? 'yes' : 'no']));
  }

  if (result.budgets?.length > 0) {
    lines.push(
      '',
      `What the throughput goals leave countersign on these ${machine.cores} cores, in CPU µs per delivery (per event for publishing): ` +
        'at the rate a goal needs, the whole machine has cores × 1 s ÷ rate; the load generator and the receiver, measured in the same runs, ' +
        'take theirs first. The floor is what the bare durable relay used, on SQLite (for publishing, the same relay storing and answering only), measured in the same rounds. ' +
        'The rest of the machine is what else was busy in those runs (the PostgreSQL server, kernel threads).',
      '',
      row([
        'Throughput goal',
        'Rate it needs',
        'Machine',
        'Load generator + receiver',
        'Left for countersign',
        'Floor used',
        'countersign used',
        'Rest of the machine used',
      ]),
      row(['--', '--:', '--:', '--:', '--:', '--:', '--:', '--:']),
    );
    for (const b of result.budgets) {
      lines.push(
        row([
          b.goal,
          fmt(b.rate),
          fmt(b.machineUs, 0),
          fmt(b.harnessUs, 0),
          fmt(b.leftUs, 0),
          fmt(b.floorUs, 0),
          fmt(b.countersignUs, 0),
          fmt(b.restUs, 0),
        ]),
      );
    }
    const median = (key) => scenarios.find((s) => s.key === key)?.median;
    const http = median('http-floor');
    const durable = median('relay-floor-publish');
    const publish = median('sqlite-publish');
    const parts = [];
    if (http?.cpuUsPerEvent !== undefined) {
      parts.push(
        'a bare node:http server answering the same publish requests (scenario http-floor: parse the JSON, answer 202, nothing else) used ' +
          `${fmt(http.cpuUsPerEvent, 0)} µs per request at ${fmt(http.publishPerSec)} requests/s`,
      );
    }
    if (durable?.cpuUsPerEvent !== undefined) {
      parts.push(
        `the bare durable relay, committing each publish before it answers (relay-floor-publish), ${fmt(durable.cpuUsPerEvent, 0)} µs at ${fmt(durable.publishPerSec)}/s`,
      );
    }
    if (parts.length > 0 && publish?.cpuUsPerEvent !== undefined) {
      parts.push(`a publish in countersign ${fmt(publish.cpuUsPerEvent, 0)} µs`);
    }
    if (parts.length > 0) {
      const sentence = parts.join('; ');
      lines.push('', `${sentence[0].toUpperCase()}${sentence.slice(1)}.`);
    }
  }
  const price = accessLogPrice(
    result.scenarios.find((s) => s.key === 'sqlite-publish'),
    result.scenarios.find((s) => s.key === 'sqlite-publish-no-access-log'),
  );
  if (price) {
    lines.push(
      '',
      `The access log (one line per request, on by default) costs ${fmt(price.us, 0)} µs of CPU per publish, the median of ` +
        `the per-round differences (${price.rounds.map((d) => fmt(d, 0)).join(', ')} µs): ` +
        `${fmt(price.withLog.cpuUsPerEvent, 0)} µs and ${fmt(price.withLog.publishPerSec)} publishes/s with it, ` +
        `${fmt(price.without.cpuUsPerEvent, 0)} µs and ${fmt(price.without.publishPerSec)}/s with COUNTERSIGN_ACCESS_LOG=off (medians).`,
    );
  }
  return `${lines.join('\n')}\n`;
}

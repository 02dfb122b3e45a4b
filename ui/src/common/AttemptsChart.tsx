// The live chart: attempts per minute, delivered against failed, drawn with uPlot. It redraws
// in place when new figures arrive and follows its container's width. The figures are also given
// in words beside it, for a screen reader and for anyone who cannot tell the colours apart.
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { AttemptsPerMinute } from '../api/queries';

const DELIVERED = '#1a7f37';
const FAILED = '#cf222e';

function columns(figures: AttemptsPerMinute): uPlot.AlignedData {
  const minutes = figures.minutes;
  return [
    minutes.map((m) => Date.parse(m.start) / 1000),
    minutes.map((m) => m.delivered),
    minutes.map((m) => m.failed),
  ];
}

export function AttemptsChart({ figures }: { figures: AttemptsPerMinute }) {
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | undefined>(undefined);

  useEffect(() => {
    const element = box.current;
    if (!element) return;
    const chart = new uPlot(
      {
        width: Math.max(element.clientWidth, 280),
        height: 220,
        scales: { y: { range: (_u, _min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
        axes: [{}, { size: 48 }],
        series: [
          {},
          { label: 'delivered', stroke: DELIVERED, fill: 'rgba(26,127,55,0.12)', width: 2 },
          { label: 'failed', stroke: FAILED, fill: 'rgba(207,34,46,0.12)', width: 2, dash: [6, 4] },
        ],
        legend: { live: false },
      },
      columns(figures),
      element,
    );
    plot.current = chart;
    const resize = new ResizeObserver(() => chart.setSize({ width: Math.max(element.clientWidth, 280), height: 220 }));
    resize.observe(element);
    return () => {
      resize.disconnect();
      chart.destroy();
      plot.current = undefined;
    };
    // Made once; new figures go through setData below.
  }, []);

  useEffect(() => {
    plot.current?.setData(columns(figures));
  }, [figures]);

  const delivered = figures.minutes.reduce((n, m) => n + m.delivered, 0);
  const failed = figures.minutes.reduce((n, m) => n + m.failed, 0);
  const last = figures.minutes[figures.minutes.length - 1];
  const summary =
    `${delivered} delivered and ${failed} failed attempts in the last ${figures.minutes.length} minutes` +
    (last ? `; this minute ${last.delivered} delivered, ${last.failed} failed` : '');
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={`Attempts per minute: ${summary}`} data-testid="attempts-chart" />
      <figcaption data-testid="attempts-summary">{summary}.</figcaption>
    </figure>
  );
}

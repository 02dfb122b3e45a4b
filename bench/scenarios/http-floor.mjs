// The publish floor: the same load generator and publish requests as the publish-only scenario,
// sent to a bare node:http server (http-floor-server.mjs) instead of countersign. Its CPU per
// request is what parsing a publish and answering it costs on this machine before any framework,
// authentication or storage: the least a publish can cost here.
import { fileURLToPath } from 'node:url';
import { cpuMeter } from '../lib/countersign.mjs';
import { apiClient, closedLoop } from '../lib/load.mjs';
import { harnessFigures } from '../lib/measure.mjs';
import { forkScript, harnessMeter, nextMessage, peakRssMB, stopChild } from '../lib/processes.mjs';
import { seconds } from '../lib/stats.mjs';

const SERVER = fileURLToPath(new URL('../http-floor-server.mjs', import.meta.url));

export async function httpFloor(ctx) {
  const { plan } = ctx;
  return ctx.repeat(plan.runs, async () => {
    const child = forkScript(SERVER, [], { name: 'http floor server' });
    let client;
    try {
      const { port } = await nextMessage(child, 'ready', 15_000);
      client = apiClient(`http://127.0.0.1:${port}`, 'no-token', plan.publishConcurrency);
      const publish = (count) =>
        closedLoop({
          count,
          concurrency: plan.publishConcurrency,
          forMs: plan.publishForMs,
          send: (i) => client.publish(i),
        });
      const warm = await publish(plan.warmup);
      if (warm.errors > 0) throw new Error(`warm-up requests failed: ${warm.firstError}`);
      const cpu = cpuMeter([child]);
      const harness = harnessMeter(ctx.receiver.pid);
      const sent = await publish(plan.events);
      return {
        events: sent.ok,
        publishPerSec: sent.ok / seconds(sent.startNs, sent.endNs),
        cpuUsPerEvent: cpu(sent.ok),
        ...harnessFigures(harness(sent.ok)),
        peakRssMB: peakRssMB(child.pid),
        errors: sent.errors,
        firstError: sent.firstError,
      };
    } finally {
      await client?.close();
      if (child.connected) child.send({ cmd: 'exit' });
      await stopChild(child, 5_000);
    }
  });
}

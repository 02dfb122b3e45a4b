// The relay floor: scenario 3's publishes, end to end, through the least a durable webhook relay
// does (relay-floor-server.mjs: node:http, one SQLite transaction a tick for the accepted events
// and one for the delivered ones, an HMAC signature and an undici POST each). Its rate against the
// ceiling and BullMQ, measured in the same rounds, is the most any Node design that stores before
// it answers can reach on this machine; its CPU per delivery is the least such a design pays.
import { fileURLToPath } from 'node:url';
import { cpuMeter, peakRssOf, sqliteDatabase } from '../lib/countersign.mjs';
import { apiClient } from '../lib/load.mjs';
import { sendAndWait, throughput } from '../lib/measure.mjs';
import { forkScript, nextMessage, stopChild } from '../lib/processes.mjs';

const SERVER = fileURLToPath(new URL('../relay-floor-server.mjs', import.meta.url));

export async function relayFloor(ctx) {
  const { plan, receiver } = ctx;
  return ctx.repeat(plan.runs, async () => {
    const database = sqliteDatabase();
    const child = forkScript(SERVER, [], {
      name: 'relay floor server',
      nodeArgs: ctx.profileArgs,
      env: {
        ...process.env,
        BENCH_DB: database.url,
        BENCH_TARGET: `${receiver.origin}/relay-floor`,
        BENCH_CONNECTIONS: String(plan.deliveryConnections),
      },
    });
    let client;
    try {
      const { port } = await nextMessage(child, 'ready', 15_000);
      client = apiClient(`http://127.0.0.1:${port}`, 'no-token', plan.publishConcurrency);
      const publish = (count) => sendAndWait(ctx, { count, send: (i) => client.publish(i) });
      await publish(plan.warmup);
      const cpu = cpuMeter([child]);
      const measured = await publish(plan.events);
      return throughput(measured, {
        peakRssMB: peakRssOf([child]),
        cpuUsPerDelivery: cpu(measured.got.unique),
      });
    } finally {
      await client?.close();
      if (child.connected) child.send({ cmd: 'exit' });
      await stopChild(child, 5_000);
      await database.drop();
    }
  });
}

// The relay floor: scenario 3's publishes through the least a durable webhook relay does
// (relay-floor-server.mjs: node:http, one SQLite transaction a tick for the accepted events and
// one for the delivered ones, an HMAC signature and an undici POST each). End to end, its rate
// against the ceiling and BullMQ, measured in the same rounds, is the most any Node design that
// stores before it answers reaches on this machine, and its CPU per delivery the least such a
// design pays. Publish only (stored and answered, nothing sent), it is the least a durable publish
// costs.
import { fileURLToPath } from 'node:url';
import { cpuMeter, peakRssOf, sqliteDatabase } from '../lib/countersign.mjs';
import { apiClient } from '../lib/load.mjs';
import { publishRate, sendAndWait, throughput } from '../lib/measure.mjs';
import { forkScript, nextMessage, stopChild } from '../lib/processes.mjs';

const SERVER = fileURLToPath(new URL('../relay-floor-server.mjs', import.meta.url));

/** Runs `work` against a fresh relay floor server on a fresh SQLite file; stops it afterwards. */
async function withRelayFloor(ctx, { send }, work) {
  const database = sqliteDatabase();
  const child = forkScript(SERVER, [], {
    name: 'relay floor server',
    nodeArgs: ctx.profileArgs,
    env: {
      ...process.env,
      BENCH_DB: database.url,
      BENCH_TARGET: `${ctx.receiver.origin}/relay-floor`,
      BENCH_CONNECTIONS: String(ctx.plan.deliveryConnections),
      BENCH_SEND: send ? 'on' : 'off',
    },
  });
  let client;
  try {
    const { port } = await nextMessage(child, 'ready', 15_000);
    client = apiClient(`http://127.0.0.1:${port}`, 'no-token', ctx.plan.publishConcurrency);
    return await work({ client, child });
  } finally {
    await client?.close();
    if (child.connected) child.send({ cmd: 'exit' });
    await stopChild(child, 5_000);
    await database.drop();
  }
}

export async function relayFloor(ctx) {
  const { plan } = ctx;
  return ctx.repeat(plan.runs, () =>
    withRelayFloor(ctx, { send: true }, async ({ client, child }) => {
      const publish = (count) => sendAndWait(ctx, { count, send: (i) => client.publish(i) });
      await publish(plan.warmup);
      const cpu = cpuMeter([child]);
      const measured = await publish(plan.events);
      return throughput(measured, {
        peakRssMB: peakRssOf([child]),
        cpuUsPerDelivery: cpu(measured.got.unique),
      });
    }),
  );
}

export async function relayFloorPublish(ctx) {
  return ctx.repeat(ctx.plan.runs, () =>
    withRelayFloor(ctx, { send: false }, ({ client, child }) => publishRate(ctx, client, [child])),
  );
}

// The publish floor: the same load generator and publish requests as the publish-only scenario,
// sent to a bare node:http server (http-floor-server.mjs) instead of countersign. Its CPU per
// request is what parsing a publish and answering it costs on this machine before any framework,
// authentication or storage: the least a publish can cost here.
import { fileURLToPath } from 'node:url';
import { apiClient } from '../lib/load.mjs';
import { publishRate } from '../lib/measure.mjs';
import { forkScript, nextMessage, stopChild } from '../lib/processes.mjs';

const SERVER = fileURLToPath(new URL('../http-floor-server.mjs', import.meta.url));

export async function httpFloor(ctx) {
  return ctx.repeat(ctx.plan.runs, async () => {
    const child = forkScript(SERVER, [], { name: 'http floor server', nodeArgs: ctx.profileArgs });
    let client;
    try {
      const { port } = await nextMessage(child, 'ready', 15_000);
      client = apiClient(`http://127.0.0.1:${port}`, 'no-token', ctx.plan.publishConcurrency);
      return await publishRate(ctx, client, [child]);
    } finally {
      await client?.close();
      if (child.connected) child.send({ cmd: 'exit' });
      await stopChild(child, 5_000);
    }
  });
}

#!/usr/bin/env node
// A Fastify receiver that verifies countersign's webhooks with @countersign/verify:
//   WEBHOOK_SECRET=whsec_... SECRET_TOKEN=shhh_its_a_secret PORT=9000 node examples/fastify-receiver.mjs
// (npm install fastify @countersign/verify in your own project; here both come from this repository.)
import { fastifyWebhook } from '@countersign/verify';
import Fastify from 'fastify';

const app = Fastify();
await app.register(async (hooks) => {
  // Raw JSON bodies, verified before the handler runs, in this scope only.
  fastifyWebhook(hooks, { secret: process.env.WEBHOOK_SECRET ?? '', secretToken: process.env.SECRET_TOKEN });
  hooks.post('/hooks', async (request) => {
    const { id, event, data } = request.webhook;
    console.log(`verified ${event} ${id} for ${data.document_id}`);
    return 'ok';
  });
});
const port = Number(process.env.PORT ?? 9000);
await app.listen({ port, host: '127.0.0.1' });
console.log(`listening on http://127.0.0.1:${port}/hooks`);

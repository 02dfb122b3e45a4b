#!/usr/bin/env node
// An Express receiver that verifies countersign's webhooks with @countersign/verify:
//   WEBHOOK_SECRET=whsec_... SECRET_TOKEN=shhh_its_a_secret PORT=9000 node examples/express-receiver.mjs
// (npm install express @countersign/verify in your own project; here both come from this repository.)
import { expressWebhook } from '@countersign/verify';
import express from 'express';

const app = express();
app.post(
  '/hooks',
  // The signature covers the body's bytes: keep them raw for this route.
  express.raw({ type: 'application/json' }),
  expressWebhook({ secret: process.env.WEBHOOK_SECRET ?? '', secretToken: process.env.SECRET_TOKEN }),
  (req, res) => {
    const { id, event, data } = req.webhook;
    console.log(`verified ${event} ${id} for ${data.document_id}`);
    res.status(200).send('ok');
  },
);
const port = Number(process.env.PORT ?? 9000);
app.listen(port, '127.0.0.1', () => console.log(`listening on http://127.0.0.1:${port}/hooks`));

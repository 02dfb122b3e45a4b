#!/usr/bin/env node
// A small webhook receiver that verifies what countersign sends, with no dependencies:
//   WEBHOOK_SECRET=whsec_... SECRET_TOKEN=shhh_its_a_secret PORT=9000 node examples/receiver.mjs
// It checks the Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature), the
// timestamp's freshness, and the seed's secret_token; it answers 401 when any check fails.
import { createHmac, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';

const secret = process.env.WEBHOOK_SECRET ?? '';
const secretToken = process.env.SECRET_TOKEN;
const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
const TOLERANCE_SECONDS = 5 * 60;

function verify(headers, body) {
  const id = headers['webhook-id'];
  const timestamp = Number(headers['webhook-timestamp']);
  const signatures = String(headers['webhook-signature'] ?? '').split(' ');
  if (!id || !Number.isInteger(timestamp)) return 'missing webhook headers';
  if (Math.abs(Date.now() / 1000 - timestamp) > TOLERANCE_SECONDS) return 'timestamp too old or in the future';
  const expected = createHmac('sha256', key).update(`${id}.${timestamp}.${body}`).digest();
  const match = signatures.some((entry) => {
    const [version, sig] = entry.split(',');
    const given = Buffer.from(sig ?? '', 'base64');
    return version === 'v1' && given.length === expected.length && timingSafeEqual(given, expected);
  });
  return match ? undefined : 'bad signature';
}

createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    let problem = verify(req.headers, body);
    const payload = problem ? undefined : JSON.parse(body);
    if (!problem && secretToken !== undefined && payload.secret_token !== secretToken)
      problem = 'secret_token mismatch';
    if (problem) {
      console.log(`rejected: ${problem}`);
      res.writeHead(401).end();
      return;
    }
    console.log(`verified ${payload.event} ${payload.id} ${JSON.stringify(payload.data)}`);
    res.writeHead(204).end();
  });
}).listen(Number(process.env.PORT ?? 9000), '127.0.0.1', () => console.log('receiver listening'));

// The publish floor's server: a bare node:http server on 127.0.0.1 that reads each POST body,
// parses it as JSON and answers 202 with a body shaped like countersign's publish answer. No
// framework, no authentication, no storage: what one publish costs any Node HTTP service here.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    let event;
    try {
      event = JSON.parse(Buffer.concat(chunks).toString('utf8')).event;
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"bad json"}');
      return;
    }
    const body = JSON.stringify({
      id: `evt_${randomUUID()}`,
      event,
      timestamp: `${new Date().toISOString().slice(0, 19)}Z`,
      deliveries: 1,
    });
    res.writeHead(202, { 'content-type': 'application/json; charset=utf-8' }).end(body);
  });
});

server.keepAliveTimeout = 30_000;
server.listen(0, '127.0.0.1', () => process.send?.({ type: 'ready', port: server.address().port }));
process.on('message', (message) => {
  if (message?.cmd === 'exit') server.close(() => process.exit(0));
});
// The benchmark stops its children with SIGTERM; exiting through process.exit lets --cpu-prof write.
process.once('SIGTERM', () => process.exit(0));

// The neighbours scenario's bad endpoints, in a process of their own: `silent` TCP servers that
// accept connections, read what comes and never answer, and `slow` HTTP servers that answer 503
// after a delay. Each listens on its own port of 127.0.0.1 (an origin of its own). Tells the parent
// its ports over IPC, and on request how many requests each kind got.
import { createServer as createHttpServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';

const silentCount = Number(process.env.SILENT ?? 50);
const slowCount = Number(process.env.SLOW ?? 10);
const slowMs = Number(process.env.SLOW_MS ?? 2000);

let silentRequests = 0;
let slowRequests = 0;
const servers = [];
const sockets = new Set();

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));
}

const silent = [];
for (let i = 0; i < silentCount; i++) {
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('data', (chunk) => {
      silentRequests += chunk.toString('latin1').split('POST ').length - 1;
    });
    socket.on('error', () => undefined);
    socket.on('close', () => sockets.delete(socket));
  });
  servers.push(server);
  silent.push(await listen(server));
}

const slow = [];
for (let i = 0; i < slowCount; i++) {
  const server = createHttpServer((req, res) => {
    slowRequests++;
    req.resume();
    const timer = setTimeout(() => {
      if (!res.destroyed) res.writeHead(503, { 'content-type': 'text/plain' }).end('unavailable');
    }, slowMs);
    res.on('close', () => clearTimeout(timer));
  });
  server.keepAliveTimeout = 60_000;
  servers.push(server);
  slow.push(await listen(server));
}

process.on('message', (message) => {
  if (message?.cmd === 'stats') process.send?.({ type: 'stats', silentRequests, slowRequests });
  if (message?.cmd === 'reset') {
    silentRequests = 0;
    slowRequests = 0;
    process.send?.({ type: 'reset' });
  }
  if (message?.cmd === 'exit') {
    for (const s of sockets) s.destroy();
    for (const server of servers) server.close();
    process.exit(0);
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.({ type: 'ready', silent, slow });

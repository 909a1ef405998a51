// Reference only: the thinnest node:http proxy (keep-alive agent + pipe, no inspection, no records), to show
// what any proxy costs on this machine. Prints {"listening": url} once ready.
import http from 'node:http';

const up = new URL(process.argv[2]);
const agent = new http.Agent({ keepAlive: true, maxFreeSockets: 256 });
const server = http.createServer((req, res) => {
  const u = http.request({ agent, host: up.hostname, port: up.port, method: req.method, path: req.url, headers: req.headers }, (ur) => {
    res.writeHead(ur.statusCode, ur.headers);
    ur.pipe(res);
  });
  u.on('error', () => res.destroy());
  req.pipe(u);
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` }) + '\n'));
process.on('SIGTERM', () => process.exit(0));

// Reference only: a bare TCP relay (each client connection piped to its own upstream connection, no HTTP at
// all). No proxy that reads HTTP can cost less than this; it shows the floor on this machine, since load
// generator, mock and proxy share its cores. Prints {"listening": url} once ready.
import net from 'node:net';

const up = new URL(process.argv[2]);
const server = net.createServer({ noDelay: true }, (client) => {
  const upstream = net.connect({ host: up.hostname, port: Number(up.port), noDelay: true });
  client.pipe(upstream);
  upstream.pipe(client);
  client.on('error', () => upstream.destroy());
  upstream.on('error', () => client.destroy());
});
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ listening: `http://127.0.0.1:${server.address().port}` }) + '\n'));
process.on('SIGTERM', () => process.exit(0));

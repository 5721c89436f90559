// A tiny HTTP CONNECT proxy on 127.0.0.1 standing for a corporate network's
// proxy: it records every request it gets (method, target, the
// Proxy-Authorization header) and tunnels only to loopback: a target that is
// a name goes to the port `names` maps it to on 127.0.0.1, an address target
// must be a 127.x address; anything else is answered 502 and never connected.
// With `auth` ("user:pass"), a request without that Basic credential gets 407.
import net from 'node:net';

export async function upstreamProxy({ auth, names = {} } = {}) {
  const seen = [];
  const sockets = new Set();
  const server = net.createServer((client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    let head = '';
    const onData = (chunk) => {
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      client.off('data', onData);
      const [line, ...fields] = head.slice(0, end).split('\r\n');
      const [method, target] = line.split(' ');
      const headers = Object.fromEntries(fields.map((f) => [f.slice(0, f.indexOf(':')).toLowerCase(), f.slice(f.indexOf(':') + 1).trim()]));
      seen.push({ method, target, authorization: headers['proxy-authorization'] ?? null });
      const answer = (status) => client.end(`HTTP/1.1 ${status}\r\nContent-Length: 0\r\n\r\n`);
      if (auth && headers['proxy-authorization'] !== `Basic ${Buffer.from(auth).toString('base64')}`) return answer('407 Proxy Authentication Required');
      if (method !== 'CONNECT') return answer('405 Method Not Allowed');
      const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(target ?? '');
      const host = m?.[1] ?? m?.[2];
      const port = host === undefined ? undefined : net.isIP(host) ? (/^127\./.test(host) ? Number(m[3]) : undefined) : names[host];
      if (port === undefined) return answer('502 Bad Gateway');
      const up = net.connect(port, '127.0.0.1');
      sockets.add(up);
      up.on('close', () => sockets.delete(up));
      up.on('error', () => client.destroy());
      client.on('close', () => up.destroy());
      up.once('connect', () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        const rest = head.slice(end + 4);
        if (rest) up.write(Buffer.from(rest, 'latin1'));
        client.pipe(up);
        up.pipe(client);
      });
    };
    client.on('data', onData);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port,
    seen,
    url: (cred = auth) => `http://${cred ? `${cred}@` : ''}127.0.0.1:${port}`,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/** A port on 127.0.0.1 that nothing listens on (bound, then closed). */
export async function closedPort() {
  const s = net.createServer();
  await new Promise((r) => s.listen(0, '127.0.0.1', r));
  const port = s.address().port;
  await new Promise((r) => s.close(r));
  return port;
}

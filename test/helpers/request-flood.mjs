// Run as another uid (test/helpers/other-uid.mjs runAs): `n` requests
// `method path` on the socket from `conc` concurrent clients, one connection
// each (keep-alive); prints {seen: {"<status> <error>": count}, retry_after: [...]}.
import http from 'node:http';

const [socketPath, n, method, urlPath, conc = '20'] = process.argv.slice(2);
const total = Number(n);
const seen = {};
const retryAfter = new Set();
let next = 0;

function once(agent) {
  return new Promise((resolve) => {
    const req = http.request({ socketPath, method, path: urlPath, agent }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let code;
        try {
          code = JSON.parse(text).error;
        } catch {
          code = undefined;
        }
        if (res.headers['retry-after'] !== undefined) retryAfter.add(res.headers['retry-after']);
        resolve(`${res.statusCode} ${code}`);
      });
    });
    req.on('error', (e) => resolve(`error ${e.code}`));
    req.end();
  });
}

await Promise.all(Array.from({ length: Number(conc) }, async () => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  while (next < total) {
    next++;
    const k = await once(agent);
    seen[k] = (seen[k] ?? 0) + 1;
  }
  agent.destroy();
}));
process.stdout.write(`${JSON.stringify({ seen, retry_after: [...retryAfter] })}\n`);

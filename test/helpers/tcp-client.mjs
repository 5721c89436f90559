// A gate client over loopback TCP, run as another uid: node builtins only
// (it must not need to read the checkout), DPoP proofs (RFC 9449) built by
// hand with an Ed25519 key. Runs the steps in process.argv[1] (JSON) and
// prints one JSON line: each step's {status, body}, and the session (lease
// and private key) so a later run can go on with it.
//
// argv[1]: { port, host?, token?, htuBase, session?, steps: [step] }
//   step: { do: 'get', path, headers? } | { do: 'lease', scopes? }
//       | { do: 'execute', action, body } | { do: 'signed', method, path }
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import http from 'node:http';

const args = JSON.parse(process.argv[1]);
const b64 = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

let session = args.session;
/** The parsed body, or its text when it is not JSON. */
const jsonOr = (text) => {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
};
const privateKey = () => createPrivateKey({ key: session.jwk, format: 'jwk' });

function send(method, path, { body, headers = {} } = {}) {
  return new Promise((resolve) => {
    const h = { ...headers };
    if (args.token !== undefined && !('latchgate-token' in h)) h['latchgate-token'] = args.token;
    if (args.host !== undefined) h.host = args.host;
    const payload = body === undefined ? undefined : JSON.stringify(body);
    if (payload !== undefined) h['content-type'] = 'application/json';
    const req = http.request({ host: '127.0.0.1', port: args.port, method, path, headers: h }, async (res) => {
      let text = '';
      for await (const d of res) text += d;
      resolve({ status: res.statusCode, body: jsonOr(text) });
    });
    req.on('error', (e) => resolve({ status: 0, body: { error: e.code } }));
    req.end(payload);
  });
}

function proof(method, path) {
  const pub = createPublicKey(privateKey()).export({ format: 'jwk' });
  const header = { typ: 'dpop+jwt', alg: 'EdDSA', jwk: { kty: pub.kty, crv: pub.crv, x: pub.x } };
  const payload = { jti: randomUUID(), htm: method, htu: `${args.htuBase}${path}`, iat: Math.floor(Date.now() / 1000), ath: createHash('sha256').update(session.lease_jwt).digest('base64url') };
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${sign(null, Buffer.from(input), privateKey()).toString('base64url')}`;
}

const signed = (method, path, body) => send(method, path, { body, headers: { authorization: `DPoP ${session.lease_jwt}`, dpop: proof(method, path) } });

const results = [];
for (const s of args.steps) {
  if (s.do === 'get') results.push(await send('GET', s.path, { headers: s.headers }));
  else if (s.do === 'lease') {
    const { privateKey: key } = generateKeyPairSync('ed25519');
    const pub = createPublicKey(key).export({ format: 'jwk' });
    const r = await send('POST', '/v1/leases', { body: { scopes: s.scopes ?? ['tools:call'], dpop_jwk: { kty: pub.kty, crv: pub.crv, x: pub.x } } });
    if (r.status === 201) session = { lease_jwt: r.body.lease_jwt, jwk: key.export({ format: 'jwk' }) };
    results.push(r);
  } else if (s.do === 'execute') results.push(await signed('POST', `/v1/actions/${s.action}/execute`, s.body));
  else if (s.do === 'signed') results.push(await signed(s.method, s.path));
  else throw new Error(`unknown step ${s.do}`);
}
process.stdout.write(JSON.stringify({ results, session }) + '\n');

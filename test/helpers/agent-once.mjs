// Run as another uid (test/helpers/other-uid.mjs runAs): an agent takes a
// lease and executes one action on the gate's client socket; prints
// {lease, status, body} as one JSON line.
import { Agent } from './gate.mjs';

const [socket, action] = process.argv.slice(2);
const agent = new Agent(socket);
const out = {};
try {
  await agent.lease();
  out.lease = agent.session_id ? 201 : 0;
  const r = await agent.execute(action, { n: 1 });
  out.status = r.status;
  out.body = r.body;
} catch (e) {
  out.error = e.message;
}
process.stdout.write(`${JSON.stringify(out)}\n`);

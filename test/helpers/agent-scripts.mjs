// Real agents (Claude Code, Codex, opencode) calling latchgate's MCP tools
// against the scripted fake model APIs (test/fixtures/e2e-claude/
// fake-anthropic.mjs, test/fixtures/e2e-codex/fake-responses.mjs): how each
// agent names an MCP tool to the model (what the fake must answer with), the
// wiring that makes it start `latchgate-mcp` and run its tools without any
// prompt (and no other tool unasked), and how to find, in the requests the
// fake recorded, the tool results the agent sent back.
//
// What each agent does, as observed with claude-code 2.1.197, codex 0.169.0
// and opencode 1.18.33 (test/e2e/agent-mcp-host.test.mjs runs all three):
//
// Claude Code (`claude -p PROMPT ...`)
// - The model sees an MCP tool as `mcp__<server>__<tool>` (a tool_use of that
//   name); the server gets tools/call with the bare tool name.
// - `--mcp-config` takes a file or the JSON itself:
//   {"mcpServers":{"latchgate":{"type":"stdio","command":...,"args":[...]}}}
//   ("type" may be left out; "env" adds to the environment, it does not
//   replace it). `--strict-mcp-config` ignores every other MCP server (the
//   user's ~/.claude.json, a project's .mcp.json); it is not needed for the
//   call itself.
// - Without a permission the call never reaches the server: the tool_result
//   is is_error "Claude requested permissions to use mcp__latchgate__t_ok,
//   but you haven't granted it yet." and the exit status is still 0.
//   `--allowedTools mcp__latchgate` (the server as a whole) allows every tool
//   of that server and nothing else; `mcp__latchgate__*` and the single
//   `mcp__latchgate__TOOL` work too, and `--settings '{"permissions":
//   {"allow":["mcp__latchgate"]}}'` likewise. A Bash command that writes is
//   still refused under it (only Claude Code's own read-only commands run).
// - `--allowedTools` and `--mcp-config` take several values: given twice
//   (a user's own and ours), or as "A,B" or "A B" in one argument, the lists
//   (and the servers) are merged. Being variadic, they swallow a prompt that
//   follows them ("Error: Input must be provided either through stdin or as
//   a prompt argument when using --print", exit 1): the prompt goes first,
//   or after `--`.
// - `--disallowedTools mcp__latchgate__X` removes the tool altogether
//   ("No such tool available").
// - The server inherits Claude Code's whole environment: LATCHGATE_URL set
//   for claude reaches latchgate-mcp without an "env" entry.
// - A tool result with isError: true comes back as a tool_result with
//   is_error: true and the text as a plain string ("schema_violation: /n:
//   must be >= 0"); a success as a list of text blocks (the output JSON, then
//   the receipt line).
// - A server that cannot list its tools (no gate): no mcp__latchgate tools;
//   a call is answered "No such tool available: ... The MCP server
//   'latchgate' is still connecting".
//
// Codex (`codex [-c ...] exec ...`)
// - MCP tools are offered grouped: {"type":"namespace","name":"mcp__latchgate",
//   "tools":[...]} in `tools` (an unknown model name such as "fake-model"),
//   or listed only as a "deferred tool namespace" in the instructions (the
//   default model, whose tools sit in an input item of type
//   additional_tools). Either way the model calls one with a function_call
//   item {"namespace":"mcp__latchgate","name":"t_ok",...}; the flat name
//   "mcp__latchgate__t_ok" is answered "unsupported call: ...".
// - `-c mcp_servers.latchgate.command="..."`, `-c
//   mcp_servers.latchgate.args=["..."]` (TOML values), optionally `-c
//   mcp_servers.latchgate.env={K="v"}`.
// - The server does NOT inherit the environment: it gets HOME, PATH, LANG,
//   TMPDIR and a few such, nothing else. `-c
//   mcp_servers.latchgate.env_vars=["LATCHGATE_URL","LATCHGATE_PUBLIC_URL"]`
//   passes those through (a name that is not set is skipped). Without it the
//   server finds no gate and Codex offers no mcp__latchgate tools.
// - Approval: under `--sandbox read-only` (exec's default) or
//   workspace-write, a tool not annotated read-only is refused with the
//   function_call_output "MCP tool call requires approval, but approval
//   policy is never"; `-c mcp_servers.latchgate.default_tools_approval_mode=
//   "approve"` (this server's tools only; per tool:
//   mcp_servers.latchgate.tools.NAME.approval_mode) lets them run. Tools with
//   readOnlyHint run without it, and under `--sandbox danger-full-access` (as
//   the codex profile sets in the box) every MCP call runs without it.
// - The function_call_output's output is a list of input_text items: "Wall
//   time: ... Output:", then the result's text contents. An error result
//   (isError: true) carries its text the same way, with no error flag.
//
// opencode (`opencode run -m openai/MODEL ...`, the openai provider speaks
// the Responses API)
// - The model sees an MCP tool as `<server>_<tool>` (a plain function tool,
//   no namespace) and calls it with a function_call of that name.
// - Config (OPENCODE_CONFIG, OPENCODE_CONFIG_CONTENT or a project
//   opencode.json; they are merged): {"mcp":{"latchgate":{"type":"local",
//   "command":[cmd, ...args],"environment":{...}}}}.
// - MCP tools are allowed by default. A config that asks for everything
//   ("permission": {"*": "ask"}) has run mode auto-reject the call ("The user
//   rejected permission to use this specific tool call.", the session ends,
//   exit 0): "latchgate_*": "allow" after it (the last matching rule wins,
//   so key order counts) lets latchgate's tools run and nothing else.
// - The server inherits opencode's whole environment.
// - The first request (the session title) carries no tools.
// - The function_call_output's output is a string: the result's text
//   contents joined by a blank line; an error result its text, no flag.

import { writeFileSync } from 'node:fs';
import path from 'node:path';

export const SERVER = 'latchgate';
export const AGENTS = ['claude-code', 'codex', 'opencode'];
/** What a box sets for latchgate-mcp (docs/MCP.md): Codex must be told to pass it on. */
export const LATCHGATE_ENV = ['LATCHGATE_URL', 'LATCHGATE_PUBLIC_URL', 'LATCHGATE_AGENT_ID'];

function known(agent) {
  if (!AGENTS.includes(agent)) throw new Error(`unknown agent ${agent} (one of ${AGENTS.join(', ')})`);
}

/** The fields of a fake step that call MCP tool `tool` of `server` as `agent` names it to the model. */
export function toolCallFields(agent, tool, server = SERVER) {
  known(agent);
  if (agent === 'claude-code') return { tool: `mcp__${server}__${tool}` };
  if (agent === 'codex') return { namespace: `mcp__${server}`, tool };
  return { tool: `${server}_${tool}` };
}

/** A fake step: `agent` calls MCP tool `tool` of `server` with `input`. */
export function toolStep(agent, tool, input = {}, server = SERVER) {
  return { ...toolCallFields(agent, tool, server), input };
}

/**
 * Scripts the fake: the next request that offers tools gets a call of each
 * of `calls` in turn (or the one `tool` with `input`), then `thenText`.
 * Returns the steps.
 */
export function scriptToolCall(fake, { agent, tool, input = {}, calls, thenText = 'done', server = SERVER }) {
  const steps = [...(calls ?? [{ tool, input }]).map((c) => toolStep(agent, c.tool, c.input ?? {}, server)), { text: thenText }];
  fake.script(steps);
  return steps;
}

const bodyOf = (q) => {
  if (typeof q.body !== 'string') return q.body;
  try {
    return JSON.parse(q.body);
  } catch {
    return undefined;
  }
};

const texts = (content) => (typeof content === 'string' ? [content] : Array.isArray(content) ? content.filter((c) => typeof c?.text === 'string').map((c) => c.text) : []);

/**
 * Every tool result the agent sent back in `requests` (a fake's recorded
 * requests, from index `from`), each once (later requests repeat the
 * conversation), in order: { id, text, isError, raw }. Messages API:
 * tool_result blocks (isError from is_error); Responses API:
 * function_call_output items (isError undefined: the API has no such flag).
 */
export function toolResults(agent, requests, { from = 0 } = {}) {
  known(agent);
  const seen = new Map();
  for (const q of requests.slice(from)) {
    if (q.method !== 'POST') continue;
    const b = bodyOf(q);
    if (!b) continue;
    if (agent === 'claude-code') {
      for (const m of b.messages ?? []) {
        for (const c of Array.isArray(m?.content) ? m.content : []) {
          if (c?.type === 'tool_result' && !seen.has(c.tool_use_id)) seen.set(c.tool_use_id, { id: c.tool_use_id, text: texts(c.content).join('\n'), isError: c.is_error === true, raw: c });
        }
      }
    } else {
      for (const i of Array.isArray(b.input) ? b.input : []) {
        if ((i?.type === 'function_call_output' || i?.type === 'custom_tool_call_output') && !seen.has(i.call_id)) {
          seen.set(i.call_id, { id: i.call_id, text: texts(i.output).join('\n'), isError: undefined, raw: i });
        }
      }
    }
  }
  return [...seen.values()];
}

/** The text of the last tool result the agent sent back (undefined if none). */
export const lastToolResultText = (agent, requests, opts) => toolResults(agent, requests, opts).at(-1)?.text;

/** The receipt id in a latchgate tool result's text ("receipt <uuid>"; docs/MCP.md), or undefined. */
export function receiptIdIn(text) {
  return /\breceipt ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\b/.exec(text ?? '')?.[1];
}

/** The action's output in a tool result's text: the pretty-printed JSON object latchgate-mcp writes first. */
export function outputIn(text) {
  const m = /^\{$[\s\S]*?^\}$/m.exec(text ?? '');
  return m ? JSON.parse(m[0]) : undefined;
}

const toml = (s) => JSON.stringify(String(s)); // a TOML basic string: JSON's escapes are TOML's
const tomlArray = (a) => `[${a.map(toml).join(', ')}]`;
const tomlTable = (o) => `{${Object.entries(o).map(([k, v]) => `${toml(k)} = ${toml(v)}`).join(', ')}}`;

/**
 * What makes `agent` start the MCP server `command args...` as `server` and
 * call its tools with no prompt, while every other tool keeps the agent's
 * own rules. `env`: variables given to the server explicitly (a box's
 * LATCHGATE_URL reaches it without: Claude Code and opencode pass their
 * environment on, Codex is told to pass `forwardEnv` on). Returns:
 * - claude-code: { args } to append after `-p PROMPT` (--mcp-config with the
 *   JSON inline, --strict-mcp-config unless strict is false, --allowedTools
 *   mcp__SERVER), and { env } that makes it wait for the server before the
 *   first turn; with `dir`, the config is written to dir/SERVER-mcp.json
 *   and named by path instead;
 * - codex: { args } of -c overrides to put before `exec`;
 * - opencode: { env: { OPENCODE_CONFIG_CONTENT }, config } (merged by
 *   opencode with OPENCODE_CONFIG; config may go in a project opencode.json
 *   instead).
 */
export function mcpWiring(agent, { command, args = [], env, server = SERVER, strict = true, dir, forwardEnv = LATCHGATE_ENV }) {
  known(agent);
  if (agent === 'claude-code') {
    const json = JSON.stringify({ mcpServers: { [server]: { type: 'stdio', command, args, ...(env ? { env } : {}) } } });
    let cfg = json;
    if (dir) {
      cfg = path.join(dir, `${server}-mcp.json`);
      writeFileSync(cfg, json);
    }
    // As profiles/claude-code.toml: without these Claude Code starts the first turn while the server still connects.
    return { args: ['--mcp-config', cfg, ...(strict ? ['--strict-mcp-config'] : []), '--allowedTools', `mcp__${server}`], env: { MCP_CONNECTION_NONBLOCKING: 'false', MCP_CONNECT_TIMEOUT_MS: '30000' } };
  }
  if (agent === 'codex') {
    const k = `mcp_servers.${server}`;
    return {
      args: [
        '-c', `${k}.command=${toml(command)}`,
        '-c', `${k}.args=${tomlArray(args)}`,
        ...(forwardEnv.length ? ['-c', `${k}.env_vars=${tomlArray(forwardEnv)}`] : []),
        ...(env ? ['-c', `${k}.env=${tomlTable(env)}`] : []),
        '-c', `${k}.default_tools_approval_mode="approve"`,
        // Without it Codex may start its first turn before the server listed its tools.
        '-c', `${k}.required=true`,
      ],
      env: {},
    };
  }
  const config = {
    mcp: { [server]: { type: 'local', command: [command, ...args], enabled: true, ...(env ? { environment: env } : {}) } },
    permission: { [`${server}_*`]: 'allow' },
  };
  return { args: [], env: { OPENCODE_CONFIG_CONTENT: JSON.stringify(config) }, config };
}

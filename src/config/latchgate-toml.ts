// latchgate.toml: declared once below (LATCHGATE_TOML), which gives its
// check, its types and docs/CONFIG.md (scripts/gen-config-docs.mjs). Parsed
// with smol-toml; unknown keys and wrong types are errors that name the file,
// the key and what was expected (with the nearest valid name). Found through
// --config, $LATCHGATE_CONFIG, ./.latchgate/latchgate.toml, $XDG_CONFIG_HOME
// and used only when trusted (config/trust.ts).
import { BOX_CREDENTIAL_PORT } from '../core/box.js';
import { KEY_SOURCE_DOC } from './key-source.js';
import { byUid, checkSchema, leaf, named, parseTomlFile, readToml, table, type Infer } from './toml-schema.js';

const CREDENTIAL = table(`A credential route: the box calls \`http://127.0.0.1:${BOX_CREDENTIAL_PORT}/<name>\` (its URL is in \`<NAME>_BASE_URL\`) and the launcher forwards the call to \`upstream\` with the key added; the box never holds the key. It overrides the agent profile's route of the same name field by field.`, {
  upstream: leaf('string', 'Where calls go: `https://host[:port][/base]`.', { shown: 'the profile\'s; else required' }),
  header: leaf('string', 'The request header that carries the key, e.g. `x-api-key` or `Authorization`.', { shown: 'the profile\'s; else required' }),
  format: leaf('string', 'The header value, `{}` standing for the key, e.g. `"Bearer {}"`.', { shown: 'the profile\'s; else `"{}"`' }),
  key_source: leaf('string', KEY_SOURCE_DOC, { shown: 'the profile\'s; else required', protectInBox: 'program' }),
  ca_file: leaf('string', 'A PEM file of certificates trusted for this upstream (besides the system\'s).', { fileRelative: true, contentTrusted: true, protectInBox: 'file' }),
});

/** The limits of one budget: per lease, and per UTC day across every lease and gate restart. */
const budgetLimits = (of: string, narrowed: (field: string, fewer: string) => string) => ({
  calls_per_lease: leaf('uint', `Calls one lease may make${of}${narrowed('max_calls', 'fewer')}.`, { shown: 'unlimited' }),
  cost_per_lease: leaf('uint', `Cost units (an action's manifest \`cost\` per call) one lease may spend${of}${narrowed('max_cost', 'less')}.`, { shown: 'unlimited' }),
  calls_per_day: leaf('uint', `Calls per UTC day${of}, counted across every lease of the principal and across gate restarts: a new lease does not reset it.`, { shown: 'unlimited' }),
  cost_per_day: leaf('uint', `Cost units per UTC day${of}, counted like \`calls_per_day\`.`, { shown: 'unlimited' }),
});

const BUDGET = table(
  'The budgets of one principal, set by the operator. Every call counts against each window that applies (the lease\'s, the day\'s; the principal\'s, and the action\'s where configured); the first one that runs out refuses the call (`budget_exhausted`, naming it). A principal\'s own entry replaces `[budgets.default]` as a whole.',
  {
    ...budgetLimits(' (every action together)', (f, fewer) => `; a lease request may ask for ${fewer} (\`budgets.${f}\`), never more than this or the day's limit`),
    actions: named(table('', budgetLimits(' of this action', () => '')), 'Limits of one action (by its action id: `[budgets.alice.actions.http_post]`; quote an id with dots) for this principal, besides the principal\'s own.', { label: 'action' }),
  },
);

export const LATCHGATE_TOML = table('latchgate.toml', {
  sandbox: table('The box `latchgate sandbox` runs the agent in.', {
    agent: table('What the box holds and reaches. A `--sandbox-config` file has these keys at its top level and replaces this section.', {
      workspace: leaf('string', 'The directory the agent works in, mounted read-write at its real path (`--workspace` overrides it); relative to the working directory.', { shown: 'the working directory' }),
      allow_hosts: leaf('string[]', 'Hosts the box may reach through the CONNECT proxy: exact names, or `*.example.com` for the subdomains (not the apex).', { default: [] }),
      ro_mounts: leaf('string[]', 'Host paths mounted read-only.', { default: [] }),
      rw_mounts: leaf('string[]', 'Host paths mounted read-write.', { default: [] }),
      pass_env: leaf('string[]', 'Host environment variables passed into the box.', { default: [] }),
      principal: leaf('string', 'The gate principal every caller inside the box is; grant it actions with `latchgate policy grant`.', { shown: '`"sandbox-<profile>"` with `--profile` (`sandbox-claude-code`, ...), else `"sandbox-agent"`' }),
      gate_tools: leaf('bool', 'Give an agent whose profile has `[gate_tools]` the gate\'s actions as MCP tools for the run (`--no-gate-tools` turns it off).', { default: true }),
      credentials: named(CREDENTIAL, '', { label: 'name' }),
    }),
    limits: table('Resources of the box.', {
      nofile: leaf('int', 'Open files (RLIMIT_NOFILE), at most the launcher\'s hard limit.', { shown: '`65536`' }),
      nproc: leaf('int', 'Processes (RLIMIT_NPROC), at most the launcher\'s hard limit.', { shown: '`4096`' }),
      tmp_size: leaf('string', 'Memory shared by `/tmp`, `/dev/shm` and HOME in the box (one tmpfs), e.g. `"4g"` or `"50%"` (`--tmp-size` overrides it).', { shown: '`"50%"`' }),
    }),
    network: table('The box\'s network exits.', {
      strict_net: leaf('bool', 'Landlock TCP rules as well: no `bind`, `connect` only to latchgate\'s exits (`--strict-net`).', { shown: '`false`' }),
      allow_ports: leaf('int[]', 'Ports the CONNECT proxy allows.', { shown: '`[443]`' }),
      extra_ca_certs: leaf('string[]', 'PEM files of certificates trusted for credential-route upstreams, and inside the box: the box gets a bundle of the system\'s CAs and these at `/run/latchgate/ca-bundle.pem`, named by `SSL_CERT_FILE`, `NODE_EXTRA_CA_CERTS`, `REQUESTS_CA_BUNDLE`, `CURL_CA_BUNDLE` and `GIT_SSL_CAINFO` (a TLS-inspecting corporate proxy\'s CA, a private mirror\'s). A file that cannot be read stops the launch.', { default: [], fileRelative: true, contentTrusted: true, protectInBox: 'file' }),
      upstream_proxy: leaf('string', 'The host\'s own HTTP proxy, `http://[user:password@]host:port`, through which both exits (the CONNECT proxy and the credential proxy) reach the internet: each allowed tunnel is a CONNECT through it. `"none"`: no proxy, whatever the environment says. The credentials never enter the box and are never printed.', { shown: '`$https_proxy`, else `$HTTPS_PROXY`, else none' }),
      no_proxy: leaf('string[]', 'Hosts the exits reach directly, not through `upstream_proxy`, with curl\'s rules: `example.com` (or `.example.com`) matches it and every name below it, `:port` narrows an entry, `"*"` is every host; an address or CIDR range (`10.0.0.0/8`, `[::1]`) matches a pinned address.', { shown: '`$no_proxy`, else `$NO_PROXY`' }),
      resolve: named(leaf('string', 'The address the name resolves to, `"10.0.0.5:443"`.'), 'Operator pins: a host name and the address the proxies use for it instead of DNS (mirrors, tests). Through `upstream_proxy`, a pinned name is asked for by its pinned address.', { label: 'host' }),
    }),
  }),
  gate: table('The gate `latchgate up` serves.', {
    public_base_url: leaf('string', 'The base URL DPoP proofs name as `htu`.', { shown: '`"http://latchgate.local"`' }),
    lease_ttl_seconds: leaf('int', 'How long a lease lives.', { shown: '`900`' }),
    max_body_bytes: leaf('int', 'The largest request body accepted.', { shown: '`1048576`' }),
    approval_ttl_seconds: leaf('int', 'How long an approval request waits for an operator.', { shown: '`300`' }),
    manifest_dirs: leaf('string[]', 'Directories of action manifests, besides the built-in `definitions/manifests`.', { default: [], fileRelative: true, protectInBox: 'dir' }),
    requests_per_second: leaf('uint', 'Requests one peer (a peer uid, the box, the loopback HTTP port) may make per second; past it the gate answers 429 `rate_limited` with `Retry-After`.', { shown: '`50`' }),
    request_burst: leaf('uint', 'Requests one peer may make at once before `requests_per_second` applies.', { shown: '`100`' }),
    max_connections_per_peer: leaf('uint', 'Connections one peer may hold open at once; one more is closed at once (`too_many_connections`, recorded).', { shown: '`64`' }),
    headers_timeout_ms: leaf('uint', 'Time a client has to send a request\'s headers (at most `request_timeout_ms`); then the gate answers 408 `request_timeout` and closes.', { shown: '`10000`' }),
    request_timeout_ms: leaf('uint', 'Time a client has to send a whole request, headers and body. The answer is not timed: a long execution runs on.', { shown: '`30000`' }),
    keep_alive_timeout_ms: leaf('uint', 'How long a kept-alive connection may wait for its next request.', { shown: '`5000`' }),
    idle_timeout_ms: leaf('uint', 'How long a connection may stay silent while the gate is not working on a request of it.', { shown: '`60000`' }),
    schema_check_ms: leaf('uint', 'How long the gate may spend checking one request, or one provider\'s answer, against an operator\'s action schema, or listing the errors of a refused one. Such checks run in worker threads (only the schemas latchgate ships are checked on the main thread); past this time the check is ended and the document refused: 422 `schema_violation` for a request, 502 `response_schema_violation` for an answer.', { shown: '`1000`' }),
    expose_http: leaf('string', 'Also serve clients over HTTP on this loopback address, e.g. `"127.0.0.1:8080"` (`--expose-http` overrides it). Its callers are identified only by client tokens (`latchgate tokens create`), sent as `LatchGate-Token: lgt_...` on every request.', { shown: 'not served' }),
    http_hosts: leaf('string[]', 'Further `Host` header values the HTTP listener answers to, as clients send them (`"gate.internal:8080"`), besides `127.0.0.1:PORT`, `localhost:PORT` and `[::1]:PORT`; any other `Host` is refused (421 `host_not_allowed`).', { default: [] }),
    http_origins: leaf('string[]', 'Browser origins (`"https://app.example"`) whose pages may call the HTTP listener; a request with any other `Origin` header is refused (403 `origin_not_allowed`).', { default: [] }),
    extra_ca_certs: leaf('string[]', 'PEM files of certificates trusted, besides the system\'s, for the HTTPS upstreams WebAssembly providers reach through the gate\'s HTTP host (a corporate mirror, a test upstream).', { default: [], fileRelative: true, contentTrusted: true, protectInBox: 'file' }),
    upstream_proxy: leaf('string', 'The host\'s own HTTP proxy, `http://[user:password@]host:port`, through which the providers\' HTTP host reaches the internet (a CONNECT tunnel per request, TLS inside it to the upstream). `"none"`: no proxy, whatever the environment says. The credentials are never printed.', { shown: '`$https_proxy`, else `$HTTPS_PROXY`, else none' }),
    no_proxy: leaf('string[]', 'Hosts the providers\' HTTP host reaches directly, not through `upstream_proxy`, with the rules of `[sandbox.network]` `no_proxy`.', { shown: '`$no_proxy`, else `$NO_PROXY`' }),
    resolve: named(leaf('string', 'The address the name resolves to, `"10.0.0.5:443"`.'), 'Operator pins for the providers\' HTTP host: a host name and the address it connects to instead of resolving the name (mirrors, tests). A pinned address is not checked against the private ranges (a pin is how a loopback or LAN upstream becomes reachable); the certificate is still verified against the name, and the host must still be in the action\'s `egress.allowed_domains`.', { label: 'host' }),
  }),
  providers: table('The WebAssembly providers that run actions (docs/PROVIDERS.md) and the file roots of their host I/O.', {
    pool_size: leaf('uint', 'Provider calls that run at once, each in a worker thread of its own.', { shown: '`4`' }),
    queue_limit: leaf('uint', 'Provider calls that may wait for a worker; past it the gate answers 429 `provider_busy`.', { shown: '`64`' }),
    fs: table('Where `builtin:fs` actions (fs_read, fs_write, ...) read and write: every path a provider names is beneath the call\'s root, opened so that no `..` or symbolic link leads out of it.', {
      root: leaf('string', 'The root of every principal and action without one of its own.', { shown: 'none: fs actions fail with `fs_root_missing`; the gate of a box (`latchgate sandbox`) uses the box\'s workspace', fileRelative: true }),
      principals: named(leaf('string', 'The directory.', { fileRelative: true }), 'Roots by principal.', { label: 'principal' }),
      actions: named(leaf('string', 'The directory.', { fileRelative: true }), 'Roots by action id (quote an id with dots); an action\'s root wins over its principal\'s.', { label: 'action' }),
    }),
  }),
  ledger: table('The ledger (docs/EVIDENCE.md).', {
    checkpoints: table(
      'Signed checkpoints of the ledger\'s Merkle tree: a gate (`latchgate up`, a box\'s) signs one every `every_events` events it appends or every `every_seconds` seconds, whichever comes first (never when the ledger did not grow), and at shutdown; `latchgate checkpoint` signs one at once. Each goes to the ledger, to `checkpoints.log` in the state directory, and to every sink below.',
      {
        every_events: leaf('uint', 'Events a gate process appends between two checkpoints (`0`: not by count).', { default: 1000 }),
        every_seconds: leaf('uint', 'Seconds between two checkpoints (`0`: not by time).', { default: 60 }),
        sinks: named(
          table('', {
            directory: leaf('string', 'A directory (on another disk or mount than the state directory; it must exist) that gets one file per checkpoint, `<size, 16 digits>.checkpoint`, written aside, synced and linked into place, never overwritten.', { fileRelative: true, protectInBox: 'dir' }),
            command: leaf('string[]', 'A program and its arguments, run without a shell for each checkpoint with the signed note on stdin and `LATCHGATE_CHECKPOINT_SIZE` and `LATCHGATE_CHECKPOINT_ORIGIN` set (and `PATH`, `HOME`, `USER`, `LOGNAME`, `LANG`, `LC_ALL`, `TZ`; nothing else of the gate\'s environment); exit 0 is success. For a shell pipeline, name the shell: `["sh", "-c", "..."]`.', { protectInBox: 'program' }),
            url: leaf('string', 'An `https://` URL the signed note is POSTed to (`text/plain`); a 2xx answer is success. No redirect is followed.'),
            ca_file: leaf('string', 'A PEM file of certificates trusted for `url`, besides the system\'s.', { fileRelative: true, contentTrusted: true, protectInBox: 'file' }),
            timeout_ms: leaf('int', 'How long a `command` or `url` delivery may take before it counts as failed.', { shown: '`10000`' }),
          }),
          'A place every checkpoint is also delivered to, at least once: exactly one of `directory`, `command` or `url`. A failed delivery is reported on stderr and in the ledger (`checkpoint_sink_failed`) and retried at every later checkpoint until the sink takes it; nothing is dropped, and the gate\'s requests never wait for a sink.',
          { label: 'name', pattern: /^(?!log$)[A-Za-z0-9_-]+$/, problem: 'expected a name of letters, digits, _ and - (not "log": that is the state directory\'s checkpoints.log)' },
        ),
      },
    ),
  }),
  state: table('Where latchgate keeps its files.', {
    dir: leaf('string', 'The state directory: ledger and keys (one `latchgate up` per directory).', { shown: '`$XDG_STATE_HOME/latchgate`', fileRelative: true }),
    runtime_dir: leaf('string', 'The runtime directory: the gate\'s sockets (and `latchgate up`\'s lock, one `up` per directory). Without it and without XDG_RUNTIME_DIR, `/tmp/latchgate-<uid>`: made mode 0700, and refused when it is a symlink, another user\'s or open to others.', { shown: '`$XDG_RUNTIME_DIR/latchgate`', fileRelative: true }),
  }),
  identity: table('Who calls the gate.', {
    principals: byUid(
      table('', {
        name: leaf('string', 'The principal callers with this peer uid are.', { required: true }),
        scopes: leaf('string[]', 'The lease scopes it may hold.', { default: ['tools:call'] }),
      }),
      'Principals by peer uid (SO_PEERCRED). None configured: the user running latchgate is the only one, with `tools:call` and `audit:read`.',
    ),
  }),
  operators: named(table('', { uid: leaf('uint', 'The peer uid of the operator on the admin socket.', { required: true }) }), 'Operators by name. None configured: the user running latchgate.', { label: 'name' }),
  budgets: named(BUDGET, 'Budgets by principal; `[budgets.default]` applies to every principal without an entry of its own. None configured (no `[budgets]` at all): every principal is unlimited, the first-run default; a lease request\'s own `budgets` still narrow its lease.', { label: 'principal' }),
  secrets: table('The SOPS file (encrypted to age recipients) that credentials are read from on the host, decrypted only when they are used (docs/SECRETS.md); `latchgate secrets` manages it.', {
    sops_file: leaf('string', 'The SOPS file of secrets: a YAML, JSON or dotenv file that sops or `latchgate secrets` wrote.', { shown: '`$XDG_CONFIG_HOME/latchgate/secrets.enc.yaml`', fileRelative: true }),
    age_key_file: leaf('string', 'The age identity file (`AGE-SECRET-KEY-1...` lines, mode 0600) that decrypts it, besides `$SOPS_AGE_KEY` and `$SOPS_AGE_KEY_FILE`.', { shown: '`$XDG_CONFIG_HOME/latchgate/age-key.txt`', fileRelative: true }),
    cache_seconds: leaf('uint', 'How long decrypted values stay in memory before the file is read and decrypted again.', { default: 300 }),
  }),
  policy: table('The policy engine.', {
    engine: leaf('string', '`"cedar"`, `"opa-wasm"` or `"opa-server"`.', { shown: '`"cedar"`' }),
    opa_wasm: leaf('string', 'The policy for `opa-wasm`, built with `opa build -t wasm`.', { fileRelative: true, protectInBox: 'file' }),
    opa_url: leaf('string', 'The decision URL for `opa-server`, e.g. `"http://127.0.0.1:8181/v1/data/latchgate/decision"`.'),
    opa_timeout_ms: leaf('int', 'How long `opa-server` may take to decide.', { shown: '`1000`' }),
  }),
});

type Toml = Infer<typeof LATCHGATE_TOML>;
type Network = Toml['sandbox']['network'];

/**
 * A credential route. origin: the file and section that configured it;
 * profileOrigin and from: set by mergeProfile for routes an agent profile
 * defines. Error messages name them.
 */
export type ConfigRoute = Infer<typeof CREDENTIAL> & { origin?: string; profileOrigin?: string; from?: 'profile' | 'config' | 'profile+config' };

/** [sandbox.agent] with [sandbox.limits] and [sandbox.network] (strict_net beside them). */
export type SandboxFileConfig = Omit<Toml['sandbox']['agent'], 'credentials'> & {
  limits: Toml['sandbox']['limits'];
  strictNet?: Network['strictNet'];
  network: Omit<Network, 'strictNet'>;
  credentials: Map<string, ConfigRoute>;
};

/** [budgets]: the operator's limits, by principal. */
export type BudgetConfig = Toml['budgets'];

/** [gate] with [state], [identity], [operators], [policy] and [budgets]. */
export type GateFileConfig = Toml['gate'] & {
  stateDir?: Toml['state']['dir'];
  runtimeDir?: Toml['state']['runtimeDir'];
  principals: Toml['identity']['principals'];
  operators: Toml['operators'];
  policy: Toml['policy'];
  /** Absent: no budgets configured (built by hand, e.g. in tests). */
  budgets?: BudgetConfig;
  /** Absent: the defaults (built by hand, e.g. in tests). */
  providers?: ProviderConfig;
  /** [ledger.checkpoints]; absent: the defaults (built by hand, e.g. in tests). */
  checkpoints?: CheckpointConfig;
};

/** [ledger.checkpoints], each sink with the file and section that configured it (origin, for messages). */
export type CheckpointConfig = Omit<Toml['ledger']['checkpoints'], 'sinks'> & { sinks: Map<string, Toml['ledger']['checkpoints']['sinks'] extends Map<string, infer S> ? S & { origin?: string } : never> };

/** [secrets]: where the SOPS file and the age key are, and how long values are kept. */
export type SecretsFileConfig = Toml['secrets'];

/** [providers]: the provider pool and the fs roots. */
export type ProviderConfig = Toml['providers'];

export interface LatchgateConfig {
  /** The file read, or null when built-in defaults apply. */
  file: string | null;
  sandbox: SandboxFileConfig;
  gate: GateFileConfig;
  /** Absent: the defaults (built by hand, e.g. in tests). */
  secrets?: SecretsFileConfig;
}

const AGENT = LATCHGATE_TOML.fields.sandbox.fields.agent;

export function parseConfig(file: string, text: string): LatchgateConfig {
  const doc = parseTomlFile(file, text);
  checkSchema(file, doc, LATCHGATE_TOML);
  return fromDocument(file, doc);
}

/**
 * --sandbox-config FILE: a standalone file whose top level holds the keys of
 * [sandbox.agent]; it replaces that section of latchgate.toml.
 */
export function parseStandaloneSandboxConfig(file: string, text: string): SandboxFileConfig {
  const doc = parseTomlFile(file, text);
  checkSchema(file, doc, AGENT);
  return fromDocument(file, { sandbox: { agent: doc } }, '').sandbox;
}

/** agentSection: how [sandbox.agent] is written in the file (empty: its keys are at the top level). */
function fromDocument(file: string, doc: Record<string, unknown>, agentSection = 'sandbox.agent.'): LatchgateConfig {
  const { sandbox, gate, state, identity, operators, policy, budgets, providers, secrets, ledger } = readToml(file, doc, LATCHGATE_TOML);
  const { strictNet, ...network } = sandbox.network;
  const credentials = new Map<string, ConfigRoute>();
  for (const [name, c] of sandbox.agent.credentials) credentials.set(name, { ...c, origin: `${file}: [${agentSection}credentials.${name}]` });
  return {
    file,
    sandbox: { ...sandbox.agent, limits: sandbox.limits, strictNet, network, credentials },
    gate: {
      ...gate, stateDir: state.dir, runtimeDir: state.runtimeDir, principals: identity.principals, operators, policy, budgets, providers,
      checkpoints: { ...ledger.checkpoints, sinks: new Map([...ledger.checkpoints.sinks].map(([name, c]) => [name, { ...c, origin: `${file}: [ledger.checkpoints.sinks.${name}]` }])) },
    },
    secrets,
  };
}

/** Backwards-compatible entry point for the sandbox part alone. */
export function emptyConfig(): LatchgateConfig {
  return parseConfig('(defaults)', '');
}

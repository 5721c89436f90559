// Where things are inside the box: the directory the launcher owns, the
// sockets the parent serves there, and the loopback ports the box's own
// relays listen on. Profiles, the planner and the egress exits all name
// these; they are defined once here.
export const BOX_RUN_DIR = '/run/latchgate';
export const BOX_GATE_SOCKET = `${BOX_RUN_DIR}/gate.sock`;
export const BOX_PROXY_SOCKET = `${BOX_RUN_DIR}/proxy.sock`;
/** Private copies of agent state files (merged back after the run). */
export const BOX_STATE_DIR = `${BOX_RUN_DIR}/state`;
/** The generated git excludes file that hides placeholders from git in the box. */
export const BOX_GIT_EXCLUDES = `${BOX_RUN_DIR}/git-excludes`;
/** The generated global git config (the user's identity and safe settings; GIT_CONFIG_GLOBAL names it). */
export const BOX_GIT_CONFIG = `${BOX_RUN_DIR}/gitconfig`;
/** The commands that run latchgate itself in the box (`latchgate`, `latchgate-mcp`). */
export const BOX_BIN_DIR = `${BOX_RUN_DIR}/bin`;
/** The gate's MCP server as an agent's configuration in the box names it. */
export const BOX_MCP_COMMAND = `${BOX_BIN_DIR}/latchgate-mcp`;
/** The run's CA bundle (the system's CAs and extra_ca_certs), when extra_ca_certs names any. */
export const BOX_CA_BUNDLE = `${BOX_RUN_DIR}/ca-bundle.pem`;
/** Names under BOX_RUN_DIR a profile's generated files may not take. */
export const BOX_RESERVED_PATHS: readonly string[] = [BOX_GATE_SOCKET, BOX_PROXY_SOCKET, BOX_STATE_DIR, BOX_GIT_EXCLUDES, BOX_GIT_CONFIG, BOX_BIN_DIR, BOX_CA_BUNDLE];

/** The HTTPS CONNECT proxy on the box's loopback. */
export const BOX_PROXY_PORT = 3128;
/** The credential-injecting reverse proxy on the box's loopback. */
export const BOX_CREDENTIAL_PORT = 3129;
/** The box's resolver (/etc/resolv.conf in the box): it refuses every query at once and records the name. */
export const BOX_DNS_ADDRESS = '127.0.0.1';
export const BOX_DNS_PORT = 53;

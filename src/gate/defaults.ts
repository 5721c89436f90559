// Gate settings when latchgate.toml says nothing (kept apart from the
// factory so that commands can read them without loading the gate).
export const DEFAULTS = {
  publicBaseUrl: 'http://latchgate.local',
  leaseTtlSeconds: 900,
  maxBodyBytes: 1024 * 1024,
  approvalTtlSeconds: 300,
  grantTtlSeconds: 60,
};

/** What one peer may ask of the gate (src/gate/peer-limits.ts), when [gate] says nothing. */
export const LIMIT_DEFAULTS = {
  requestsPerSecond: 50,
  requestBurst: 100,
  maxConnectionsPerPeer: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
};

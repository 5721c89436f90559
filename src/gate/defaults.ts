// Gate settings when latchgate.toml says nothing (kept apart from the
// factory so that commands can read them without loading the gate).
export const DEFAULTS = {
  publicBaseUrl: 'http://latchgate.local',
  leaseTtlSeconds: 900,
  maxBodyBytes: 1024 * 1024,
  approvalTtlSeconds: 300,
  grantTtlSeconds: 60,
};

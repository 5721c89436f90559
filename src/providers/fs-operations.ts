// The operations a manifest's fs section may allow (src/gate/manifest-schema.ts
// validates against this list; src/providers/host-fs.ts implements them).
export const FS_OPERATIONS = ['read', 'create', 'overwrite', 'delete', 'list', 'stat'] as const;
export type FsOperation = (typeof FS_OPERATIONS)[number];

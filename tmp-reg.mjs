const { openDb } = await import('./dist/ledger/db.js');
const { Registry } = await import('./dist/gate/registry.js');
const db = openDb(':memory:');
const t1 = performance.now();
const r = new Registry(db, [], { builtin: true }); r.migrate(); r.load();
const t2 = performance.now();
const r2 = new Registry(db, [], { builtin: true }); r2.migrate(); r2.load();
console.log('registry', (t2 - t1).toFixed(0), 'second', (performance.now() - t2).toFixed(0), 'ms', r.list().length);

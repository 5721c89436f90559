// The verify page's script (inlined into dist/verify.html by
// scripts/build-verify-page.mjs). Loads the inlined modules as blob: URLs,
// dependencies first, then verifies whatever bundle, keys and request are
// given. Text from the bundle is only ever set as textContent.
(async () => {
  'use strict';
  const $ = (id) => document.getElementById(id);
  const verdict = $('verdict');
  const say = (state, text) => {
    verdict.dataset.verdict = state;
    verdict.textContent = text;
  };
  let api;
  try {
    const data = JSON.parse($('latchgate-modules').textContent);
    const urls = [];
    for (const code of data.modules) {
      const linked = code.replace(/\u0000module:(\d+)\u0000/g, (_, n) => urls[Number(n)]);
      urls.push(URL.createObjectURL(new Blob([linked], { type: 'text/javascript' })));
    }
    const [bundle, keys, json] = await Promise.all([import(urls[data.entries.bundle]), import(urls[data.entries.trustedKeys]), import(urls[data.entries.json])]);
    api = { ...bundle, ...keys, ...json };
  } catch (e) {
    say('load-error', `The verifier did not load: ${e && e.message ? e.message : e}`);
    return;
  }

  const state = { bundle: null, bundleName: '', request: undefined, requestError: '' };

  function trustedKeys() {
    const parts = [];
    for (const [id, source] of [['trusted-receipt-keys', 'trusted receipt keys'], ['trusted-checkpoint-keys', 'trusted checkpoint keys']]) {
      const text = $(id).value;
      if (text.trim() !== '') parts.push(api.parseTrustedKeys(text, source));
    }
    return api.mergeTrustedKeys(...parts);
  }

  function render() {
    const body = $('checks').tBodies[0];
    body.replaceChildren();
    if (state.bundle === null) return say('none', 'No bundle yet.');
    if (state.requestError) return say('input-error', state.requestError);
    let trusted;
    try {
      trusted = trustedKeys();
    } catch (e) {
      return say('input-error', e.message);
    }
    const report = api.verifyBundle(state.bundle, { trusted, request: state.request });
    say(report.verdict, report.summary);
    for (const c of report.checks) {
      const tr = document.createElement('tr');
      tr.dataset.check = c.id;
      tr.dataset.status = c.status;
      for (const [cls, text] of [['status', c.status === 'not_checked' ? 'not checked' : c.status === 'ok' ? 'ok' : 'FAILED'], ['title', c.title], ['detail', c.detail]]) {
        const td = document.createElement('td');
        td.className = cls;
        td.textContent = text;
        tr.append(td);
      }
      body.append(tr);
    }
  }

  async function takeBundle(file) {
    if (!file) return;
    state.bundle = await file.text();
    $('bundle-name').textContent = file.name;
    render();
  }

  $('bundle-file').addEventListener('change', (e) => takeBundle(e.target.files[0]));
  $('request-file').addEventListener('change', async (e) => {
    const file = e.target.files[0];
    state.request = undefined;
    state.requestError = '';
    if (file) {
      $('request-name').textContent = file.name;
      try {
        state.request = { value: api.parseJson(await file.text()) };
      } catch (err) {
        state.requestError = `the request file ${file.name} is not a JSON document: ${err.message}`;
      }
    }
    render();
  });
  for (const id of ['trusted-receipt-keys', 'trusted-checkpoint-keys']) $(id).addEventListener('input', render);
  const drop = $('drop');
  drop.addEventListener('dragover', (e) => {
    e.preventDefault();
    drop.classList.add('over');
  });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    takeBundle(e.dataTransfer.files[0]);
  });
  // Ready: tests and users can tell the page loaded its verifier.
  document.body.dataset.ready = 'true';
  render();
})();

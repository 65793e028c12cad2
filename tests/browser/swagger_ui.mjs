// Drives the server's Swagger UI (/docs) in headless Chromium the way a person would: Authorize
// through the OAuth2 password-flow dialog (the tenant ID goes in client_id), then "Try it out" /
// "Execute" on GET /api/v1/auth/me (and, with --icsrs, GET /api/v1/icsrs), reading the status
// and body that the page shows. Saves a full-page screenshot.
//
//   node swagger_ui.mjs --base http://127.0.0.1:8000 --tenant acme-pharma \
//     --username juan.perez --password SecurePass123 --screenshot /tmp/swagger-ui.png [--icsrs]
//
// On success prints one line of JSON to stdout ({"me_status":200,"me_body":{...},...}) and exits
// 0; on any failure prints "swagger_ui: FAILED: <why>" to stderr and exits 1 (a screenshot of the
// page as it was is still written to --screenshot when the page got that far).
//
// Uses the system's Chromium ($CHROMIUM, default /usr/bin/chromium); never downloads a browser.
// Every wait is bounded by Playwright's timeouts (--timeout ms per step, default 15000).

import { parseArgs } from 'node:util';
import { chromium } from 'playwright-core';

class Failure extends Error {}

function fail(message) {
  throw new Failure(message);
}

function parseCli() {
  const { values } = parseArgs({
    options: {
      base: { type: 'string' },
      tenant: { type: 'string' },
      username: { type: 'string' },
      password: { type: 'string' },
      screenshot: { type: 'string' },
      'me-screenshot': { type: 'string' },
      icsrs: { type: 'boolean', default: false },
      timeout: { type: 'string', default: '15000' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  const usage =
    'usage: node swagger_ui.mjs --base URL --tenant ID --username NAME --password PASS ' +
    '--screenshot FILE.png [--me-screenshot FILE.png] [--icsrs] [--timeout MS]';
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  for (const key of ['base', 'tenant', 'username', 'password', 'screenshot']) {
    if (!values[key]) fail(`missing --${key}\n${usage}`);
  }
  const timeout = Number(values.timeout);
  if (!Number.isInteger(timeout) || timeout <= 0) fail(`--timeout must be a positive integer`);
  return { ...values, base: values.base.replace(/\/+$/, ''), timeout };
}

/** Runs `step`, turning a Playwright timeout or error into a failure that says which step. */
async function step(name, fn) {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof Failure) throw err;
    const first = String(err?.message ?? err).split('\n')[0];
    fail(`${name}: ${first}`);
  }
}

/** Logs in through the Authorize dialog; returns the token endpoint's status and where the
 * tenant went ("body": form field client_id, "basic": HTTP Basic user name). */
async function authorize(page, opts) {
  const loginResponses = [];
  let clientIdVia = null;
  page.on('response', (resp) => {
    const req = resp.request();
    if (req.method() === 'POST' && new URL(resp.url()).pathname === '/api/v1/auth/login') {
      loginResponses.push(resp.status());
      // Where Swagger UI put the tenant: the form's client_id or HTTP Basic's user name.
      const form = new URLSearchParams(req.postData() ?? '');
      const basic = /^Basic\s+(.+)$/i.exec(req.headers()['authorization'] ?? '');
      if (form.get('client_id') === opts.tenant) clientIdVia = 'body';
      else if (basic && Buffer.from(basic[1], 'base64').toString().split(':')[0] === opts.tenant) {
        clientIdVia = 'basic';
      }
    }
  });

  await step('open the Authorize dialog', () =>
    page.locator('.auth-wrapper .btn.authorize').click(),
  );
  const modal = page.locator('.dialog-ux .modal-ux');
  await step('wait for the Authorize dialog', () => modal.waitFor({ state: 'visible' }));

  // The dialog holds one container per security scheme; take the one with the password flow,
  // by position (once authorized it no longer has the inputs a filter could match on).
  const containers = modal.locator('.auth-container');
  await step('find the OAuth2 password-flow form', () =>
    containers.locator('#oauth_username').first().waitFor({ state: 'visible' }),
  );
  const index = await containers.evaluateAll((all) =>
    all.findIndex((c) => c.querySelector('#oauth_username')),
  );
  if (index < 0) fail('no OAuth2 password-flow form in the Authorize dialog');
  const box = containers.nth(index);
  await step('fill username', () => box.locator('#oauth_username').fill(opts.username));
  await step('fill password', () => box.locator('#oauth_password').fill(opts.password));

  // Where the client credentials go: "Request body" when the dialog offers a choice.
  const location = box.locator('select#password_type');
  if ((await location.count()) > 0) {
    await step('choose "Request body" for the client credentials', () =>
      location.selectOption({ label: 'Request body' }),
    );
  }
  // Swagger UI 5.x names the field per flow (#client_id_password); older ones #client_id.
  await step('fill client_id with the tenant', () =>
    box.locator('#client_id_password, #client_id').first().fill(opts.tenant),
  );

  await step('click Authorize in the dialog', () =>
    box.locator('.auth-btn-wrapper .btn.authorize').click(),
  );

  // Either Swagger UI shows the scheme as authorized (its Authorize button becomes "Logout",
  // aria-label "Remove authorization") or an auth error.
  const authorized = box
    .locator('.auth-btn-wrapper .btn.authorize[aria-label="Remove authorization"]')
    .or(box.locator('.auth-btn-wrapper .btn.authorize', { hasText: /^Logout$/ }));
  const error = box.locator('.errors');
  await step('wait for the login to finish', () =>
    authorized.or(error).first().waitFor({ state: 'visible' }),
  );
  if (await error.isVisible()) {
    // <div class="errors"><b>Auth Error</b><span>Error: Unauthorized</span></div>
    const text = await error
      .first()
      .evaluate((e) => [...e.children].map((c) => c.textContent.trim()).join(': '));
    fail(`login through the Authorize dialog failed (token endpoint status ${loginResponses.at(-1) ?? 'unknown'}): ${text}`);
  }

  await step('close the Authorize dialog', () =>
    box.locator('.auth-btn-wrapper .btn-done').click(),
  );
  await step('wait for the dialog to close', () => modal.waitFor({ state: 'detached' }));
  return { login_status: loginResponses.at(-1) ?? null, client_id_via: clientIdVia };
}

/** The operation block for `method path` (null when the page has none). */
async function operation(page, method, path) {
  const block = page
    .locator(`.opblock.opblock-${method.toLowerCase()}`)
    .filter({ has: page.locator(`.opblock-summary-path[data-path="${path}"]`) });
  const n = await block.count();
  if (n > 1) fail(`${method} ${path}: ${n} operation blocks on the page`);
  return n === 1 ? block : null;
}

/** Expand, "Try it out", "Execute"; returns {status, body, text} as the page shows them. */
async function tryItOut(page, block, label) {
  if (!(await block.locator('.opblock-body').isVisible())) {
    // Swagger UI 5 makes the summary's path part a button of its own; older ones the row.
    const control = block.locator('.opblock-summary .opblock-summary-control');
    const toggle = (await control.count()) > 0 ? control.first() : block.locator('.opblock-summary').first();
    await step(`${label}: expand`, () => toggle.click());
  }
  await step(`${label}: click "Try it out"`, () => block.locator('.try-out__btn').click());
  await step(`${label}: click "Execute"`, () => block.locator('.btn.execute').click());

  // Either the response shows, or Swagger UI refuses to send (a required parameter is empty:
  // it marks the input .invalid).
  const live = block.locator('.responses-table.live-responses-table .response');
  const statusCell = live.locator('.response-col_status').first();
  const invalid = block.locator('.parameters :is(input, select, textarea).invalid');
  await step(`${label}: wait for the response`, () =>
    statusCell.or(invalid).first().waitFor({ state: 'visible' }),
  );
  if (!(await statusCell.isVisible()) && (await invalid.count()) > 0) {
    const names = await block
      .locator('.parameters tr:has(:is(input, select, textarea).invalid) .parameter__name')
      .allInnerTexts();
    fail(`${label}: Swagger UI did not send the request: required parameters empty: ${names.map((n) => n.replace(/\s+/g, ' ').replace(/\s*\*$/, '').trim()).join(', ')}`);
  }
  const statusText = (await statusCell.innerText()).trim();

  // The body is the first highlighted code block of the live response ("Response body").
  const code = live.locator('.response-col_description .highlight-code').first();
  let text = '';
  if ((await code.count()) > 0) {
    text = (await code.locator('code, pre').first().textContent()) ?? '';
  }
  const status = Number.parseInt(statusText, 10);
  if (!Number.isInteger(status)) {
    fail(`${label}: no HTTP status on the page (status cell says ${JSON.stringify(statusText)}, body ${JSON.stringify(text.trim().slice(0, 300))})`);
  }
  let body = null;
  try {
    body = JSON.parse(text);
  } catch {
    body = null;
  }
  return { status, body, text: text.trim() };
}

async function main() {
  const opts = parseCli();
  const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
  const browser = await step(`launch ${executablePath}`, () =>
    chromium.launch({ executablePath, args: ['--no-sandbox'], timeout: 30_000 }),
  );
  let page;
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    page = await context.newPage();
    page.setDefaultTimeout(opts.timeout);
    page.setDefaultNavigationTimeout(opts.timeout);
    const pageErrors = [];
    page.on('pageerror', (err) => pageErrors.push(String(err?.message ?? err)));

    const resp = await step(`open ${opts.base}/docs`, () => page.goto(`${opts.base}/docs`));
    if (!resp || !resp.ok()) fail(`GET ${opts.base}/docs answered ${resp?.status()}`);
    await step('wait for Swagger UI to render', () =>
      page.locator('.swagger-ui .information-container .title').waitFor({ state: 'visible' }),
    ).catch((err) => {
      if (pageErrors.length) fail(`${err.message} (page errors: ${pageErrors.join('; ')})`);
      throw err;
    });

    const summary = { ...(await authorize(page, opts)) };

    const me = await operation(page, 'GET', '/api/v1/auth/me');
    if (!me) fail('GET /api/v1/auth/me is not on the page');
    const meResult = await tryItOut(page, me, 'GET /api/v1/auth/me');
    summary.me_status = meResult.status;
    summary.me_body = meResult.body ?? meResult.text;
    if (meResult.status !== 200) {
      fail(`GET /api/v1/auth/me answered ${meResult.status}: ${meResult.text.slice(0, 500)}`);
    }
    if (meResult.body?.username !== opts.username && meResult.body?.email !== opts.username) {
      fail(`GET /api/v1/auth/me body does not name ${opts.username}: ${meResult.text.slice(0, 500)}`);
    }
    if (opts['me-screenshot']) {
      // Just the /me operation down to its live 200 response (the README's picture).
      await step(`screenshot of /me to ${opts['me-screenshot']}`, async () => {
        const block = await me.boundingBox();
        const live = await me.locator('.responses-table.live-responses-table').boundingBox();
        if (!block || !live) fail('GET /api/v1/auth/me: the operation or its response is not laid out');
        // Bounding boxes are relative to the viewport; a full-page clip to the page.
        const [sx, sy] = await page.evaluate(() => [window.scrollX, window.scrollY]);
        const clip = { x: block.x + sx, y: block.y + sy, width: block.width, height: live.y + live.height - block.y };
        await page.screenshot({ path: opts['me-screenshot'], fullPage: true, clip });
      });
    }

    if (opts.icsrs) {
      const icsrs = await operation(page, 'GET', '/api/v1/icsrs');
      if (!icsrs) fail('--icsrs given but GET /api/v1/icsrs is not on the page');
      const r = await tryItOut(page, icsrs, 'GET /api/v1/icsrs');
      summary.icsrs_status = r.status;
      if (r.status !== 200) {
        fail(`GET /api/v1/icsrs answered ${r.status}: ${r.text.slice(0, 500)}`);
      }
      if (r.body === null) fail(`GET /api/v1/icsrs body is not JSON: ${r.text.slice(0, 500)}`);
    }

    await step(`screenshot to ${opts.screenshot}`, () =>
      page.screenshot({ path: opts.screenshot, fullPage: true }),
    );
    summary.screenshot = opts.screenshot;
    process.stdout.write(`${JSON.stringify(summary)}\n`);
  } catch (err) {
    if (page && err instanceof Failure) {
      // The page as it was, to see why; best effort and bounded.
      await page
        .screenshot({ path: opts.screenshot, fullPage: true, timeout: 10_000 })
        .then(() => { err.message += ` (screenshot of the page: ${opts.screenshot})`; })
        .catch(() => {});
    }
    throw err;
  } finally {
    await browser.close().catch(() => {});
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    const why = err instanceof Failure ? err.message : (err?.stack ?? String(err));
    process.stderr.write(`swagger_ui: FAILED: ${why}\n`);
    process.exit(1);
  },
);

// Browser test of the Refract console: Debian's Chromium driven by playwright-core.
//
//   CONSOLE_URL=http://127.0.0.1:PORT WASM_PATH=/tmp/webhook_echo.wasm node console.test.mjs
//
// Environment: CONSOLE_URL (required), WASM_PATH (the webhook-echo example component,
// required), CHROMIUM (default /usr/bin/chromium), ARTIFACTS (screenshots; default ./artifacts).
// Every main screen is saved as a PNG; on failure the page at that moment is saved as
// failure.png and the process exits 1 with the failed step.

import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const url = process.env.CONSOLE_URL;
const wasm = process.env.WASM_PATH;
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';
const artifacts = process.env.ARTIFACTS || join(import.meta.dirname, 'artifacts');
if (!url || !wasm) {
  console.error('CONSOLE_URL and WASM_PATH are required');
  process.exit(2);
}
if (!existsSync(executablePath)) {
  console.error(`Chromium is missing at ${executablePath}: apt-get install -y chromium (or set CHROMIUM)`);
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
rmSync(join(artifacts, 'failure.png'), { force: true });

const browser = await chromium.launch({ executablePath, headless: true, args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1360, height: 900 }, baseURL: url });
const page = await context.newPage();
page.setDefaultTimeout(20000);

// Any script error or CSP violation fails the run: the console must work under its policy.
const problems = [];
page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
page.on('console', (msg) => {
  if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(`console error: ${msg.text()}`);
});

let step = 'start';
const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
const expectText = async (locator, text) => {
  await locator.filter({ hasText: text }).first().waitFor();
};

try {
  step = 'the sign-in page loads under its CSP';
  const res = await page.goto('/');
  const csp = res.headers()['content-security-policy'] || '';
  if (!csp.includes("script-src 'self'")) throw new Error(`no strict CSP on the page: ${csp}`);
  await page.getByRole('heading', { name: 'Welcome to Refract' }).waitFor();
  await shot('01-sign-in');

  step = 'sign up';
  await page.getByRole('tab', { name: 'Create account' }).click();
  await page.getByLabel('First name').fill('Ada');
  await page.getByLabel('Last name').fill('Lovelace');
  await page.getByLabel('Email').fill(`ada-${Date.now()}@example.com`);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Create account' }).click();
  await page.getByRole('heading', { name: 'Workspaces' }).waitFor();
  await page.getByRole('button', { name: 'Sign out' }).waitFor();

  step = 'create a workspace';
  await page.getByLabel('New workspace').fill('Browser test');
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await page.getByRole('heading', { name: 'Automations' }).waitFor();
  await shot('02-workspace-empty');

  step = 'create a component automation with a webhook';
  await page.getByLabel('Name', { exact: true }).fill('Webhook echo');
  await page.getByLabel('Slug').fill('echo');
  await page.getByRole('button', { name: 'Create automation' }).click();
  await page.getByRole('heading', { name: /Webhook echo/ }).waitFor();
  await expectText(page.locator('.chip.endpoint'), '/webhooks/echo');

  step = 'upload the webhook-echo component';
  await page.locator('input[type=file][name=component]').setInputFiles(wasm);
  await page.getByRole('button', { name: 'Upload' }).click();
  await expectText(page.locator('.badge'), 'ready');
  await expectText(page.locator('.facts'), 'sha256:');
  await expectText(page.locator('.facts'), 'Memory limit');
  await shot('03-automation-uploaded');

  step = 'run it from the test panel';
  await page.getByLabel('Payload (JSON)').fill('{"hello": "browser"}');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  const output = page.locator('.test-result pre.output');
  await expectText(output, '"hello": "browser"');
  await expectText(output, '"method": "POST"');
  await expectText(page.locator('.test-result .badge'), 'HTTP 201');
  await expectText(page.locator('.run-duration'), 'success');
  await expectText(page.locator('.run-events'), 'runtime.automations.executed');
  await shot('04-test-panel');

  step = 'a failing run shows its error in the test panel';
  await page.getByLabel('Send as').selectOption('test');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  // webhook-echo refuses anything but an HTTP trigger: its typed error is the answer.
  await expectText(page.locator('.test-result pre.error'), 'NotAWebhook');
  await expectText(page.locator('.run-duration'), 'error');

  step = 'the executed event is in the live feed, and a new one arrives live';
  await page.getByRole('link', { name: 'Live events' }).click();
  await page.getByRole('heading', { name: 'Live events' }).waitFor();
  const feed = page.locator('.feed');
  await expectText(feed, 'runtime.automations.executed');
  const before = await feed.locator('li.event').count();
  await page.locator('.live-status').filter({ hasText: 'Live' }).waitFor();
  const transport = await page.locator('.live-status').innerText();
  const hook = await page.evaluate(async () => {
    const ws = location.hash.split('/')[2];
    const r = await fetch(`/v2/workspaces/${ws}/webhooks/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"live": true}' });
    return r.status;
  });
  if (hook !== 201) throw new Error(`the second webhook call answered ${hook}`);
  await page.waitForFunction((n) => document.querySelectorAll('.feed li.event').length > n, before);
  await expectText(feed.locator('li.event').first(), 'echo');

  step = 'open the detail of an executed event';
  // Keyboard: focus the row and press Enter.
  await feed.locator('li.event[data-type="runtime.automations.executed"]').first().focus();
  await page.keyboard.press('Enter');
  const detail = page.locator('.event-detail');
  await expectText(detail, '"status":');
  await shot('05-live-events');

  step = 'filter the feed by type and pause it';
  await page.getByLabel('Types').fill('runtime.automations.executed');
  await page.getByRole('button', { name: 'Apply' }).click();
  await page.waitForFunction(() => [...document.querySelectorAll('.feed li.event')].every((li) => li.dataset.type === 'runtime.automations.executed'));
  await page.getByRole('button', { name: 'Pause' }).click();
  await page.getByRole('button', { name: /Resume/ }).waitFor();

  step = 'the run history shows the runs with their correlation ids';
  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();
  const history = page.locator('table.runs');
  await expectText(history, 'echo');
  await expectText(history, 'success');
  if (await page.locator('svg.chart rect.bar.ok').count() < 1) throw new Error('the runs chart has no bar');
  if (await page.locator('svg.chart rect.bar.err').count() < 1) throw new Error('the failed run is not highlighted in the chart');
  await expectText(history.locator('tr.failed'), 'NotAWebhook');
  await shot('06-runs');

  step = 'a failed run opens with its error and log';
  await history.locator('tr.failed a.run-log').first().click();
  await page.getByRole('heading', { name: /^Run of / }).waitFor();
  await expectText(page.locator('.run-view .notice.error'), 'NotAWebhook');
  await page.locator('.run-view h2', { hasText: 'Log' }).waitFor();
  await shot('06b-run');
  await page.goBack();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();

  step = 'a run that failed every retry is a dead letter, replayed from its page';
  const created = await page.evaluate(async () => {
    const ws = location.hash.split('/')[2];
    const me = await fetch('/v2/me');
    const csrf = me.headers.get('x-prismeai-csrf-token');
    const headers = { 'content-type': 'application/json', 'x-prismeai-csrf-token': csrf };
    const a = await fetch(`/v2/workspaces/${ws}/automations`, { method: 'POST', headers, body: JSON.stringify({
      slug: 'always-fails', name: 'Always fails', when: { events: ['job.failed'] },
      retry: { attempts: 2, backoff: { initialMs: 100 } }, do: [{ emit: { event: 'not a valid type!' } }] }) });
    const e = await fetch(`/v2/workspaces/${ws}/events`, { method: 'POST', headers, body: JSON.stringify({ events: [{ type: 'job.failed', payload: {} }] }) });
    return [a.status, e.status];
  });
  if (created.join() !== '200,200') throw new Error(`creating the failing automation answered ${created}`);
  await page.getByRole('link', { name: 'Dead letters' }).click();
  await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
  // Two attempts 100 ms apart, then the dead letter: read the page again until it is there.
  for (let i = 0; i < 40 && await page.locator('table.deadletters').count() === 0; i += 1) {
    await page.waitForTimeout(250);
    await page.reload();
    await page.getByRole('heading', { name: 'Dead letters' }).waitFor();
  }
  const letter = page.locator('table.deadletters tbody tr').filter({ hasText: 'always-fails' });
  await expectText(letter, 'InvalidEventError');
  await shot('06c-dead-letters');
  await letter.getByRole('button', { name: 'Replay' }).click();
  await expectText(page.locator('#toasts'), 'failed again');
  await page.getByRole('link', { name: 'Runs', exact: true }).click();
  await page.getByRole('heading', { name: 'Runs' }).waitFor();

  step = 'the correlation id leads to the events of that run';
  await history.locator('tbody tr').first().locator('a[title="Events of this run"]').click();
  await expectText(page.locator('.notice'), 'Showing the events of run');
  await expectText(page.locator('.feed'), 'runtime.interactions.triggered');

  step = 'create and list a secret';
  await page.getByRole('link', { name: 'Members & security' }).click();
  await page.getByRole('heading', { name: 'Members & security' }).waitFor();
  await page.getByLabel('Secret name').fill('CRM_TOKEN');
  await page.getByLabel('Value').fill('s3cret-value');
  await page.getByRole('button', { name: 'Save secret' }).click();
  await expectText(page.locator('section[aria-labelledby="secrets-title"] table'), 'CRM_TOKEN');
  if ((await page.content()).includes('s3cret-value')) throw new Error('the secret value is shown on the page');

  step = 'create an API key, see it once, revoke it';
  await page.getByLabel('Key name').fill('CRM server');
  await page.getByRole('button', { name: 'Create API key' }).click();
  await expectText(page.locator('.secret-once'), 'rfk_');
  const key = await page.locator('.secret-once').innerText();
  await expectText(page.locator('table.apikeys'), `…${key.slice(-4)}`);
  await shot('07-settings');
  await page.getByRole('row', { name: /CRM server/ }).getByRole('button', { name: 'Revoke' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('table.apikeys').waitFor({ state: 'detached' });

  step = 'the YAML editor shows parse errors and the API validation errors inline';
  await page.getByRole('link', { name: 'Automations', exact: true }).click();
  await page.getByRole('link', { name: 'New DSL automation' }).click();
  const yaml = page.getByLabel('Automation YAML');
  await yaml.fill('slug: nightly\nname: Nightly\nwhen:\n  schedules: [\n');
  await expectText(page.locator('.problems'), 'line');
  await yaml.fill('slug: nightly\nname: Nightly\nwhen:\n  schedules: ["every now and then"]\ndo:\n  - emit:\n      event: nightly.done\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await expectText(page.locator('.problems'), 'InvalidScheduleError');
  await shot('08-yaml-error');

  step = 'a valid DSL automation saves and lists its schedule with the next run';
  await yaml.fill('slug: nightly\nname: Nightly\nwhen:\n  schedules: ["0 3 * * *"]\ndo:\n  - emit:\n      event: nightly.done\n');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: /Nightly/ }).waitFor();
  await expectText(page.locator('.chip.schedule'), 'next');

  step = 'a second save keeps the first as a version: diffed, then restored';
  await page.getByRole('link', { name: 'Edit YAML' }).click();
  const edit = page.getByLabel('Automation YAML');
  await edit.waitFor();
  await edit.fill((await edit.inputValue()).replace('0 3 * * *', '0 4 * * *'));
  await page.getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: /Nightly/ }).waitFor();
  const versions = page.locator('table.versions tbody tr');
  await versions.first().waitFor();
  if (await versions.count() !== 1) throw new Error(`expected one version, saw ${await versions.count()}`);
  await versions.first().getByRole('button', { name: 'Diff' }).click();
  await expectText(page.locator('.diff .line.removed'), '0 3 * * *');
  await expectText(page.locator('.diff .line.added'), '0 4 * * *');
  await shot('09-versions-diff');
  await versions.first().getByRole('button', { name: 'Restore' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Restore' }).click();
  await page.waitForFunction(() => document.querySelectorAll('table.versions tbody tr').length === 2);
  await expectText(page.locator('.chip.schedule'), '0 3 * * *');

  step = 'without the WebSocket the feed falls back to polling the history';
  const polled = await context.newPage();
  await polled.routeWebSocket(/\/events\/ws/, (ws) => ws.close({ code: 1008, reason: 'blocked by the test' }));
  const wsId = page.url().split('#/w/')[1].split('/')[0];
  await polled.goto(`/#/w/${wsId}/events`);
  await polled.locator('.live-status').filter({ hasText: 'polling' }).waitFor();
  const polledBefore = await polled.locator('.feed li.event').count();
  const again = await polled.evaluate(async (id) => (await fetch(`/v2/workspaces/${id}/webhooks/echo`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"polled": true}' })).status, wsId);
  if (again !== 201) throw new Error(`the webhook call answered ${again}`);
  await polled.waitForFunction((n) => document.querySelectorAll('.feed li.event').length > n, polledBefore);
  await polled.close();

  step = 'sign out';
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('heading', { name: 'Welcome to Refract' }).waitFor();

  if (problems.length) {
    step = 'no script error or CSP violation';
    throw new Error(problems.join('\n'));
  }
  console.log(`console browser test passed (events: ${transport.trim()}); screenshots in ${artifacts}`);
} catch (err) {
  await page.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
  console.error(`FAILED at step "${step}": ${err.message}`);
  if (problems.length) console.error(problems.join('\n'));
  console.error(`screenshot: ${join(artifacts, 'failure.png')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

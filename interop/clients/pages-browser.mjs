// The account page and the operators' console in a real browser (Debian's Chromium,
// driven by playwright-core): a user connects the TypeScript SDK through the normal flow,
// opens /account, sees the client and revokes it, and the client's next call is refused;
// an operator revokes another connection from /admin and sees the audit event; a user who
// is no operator is refused; a form posted from another site is refused. Screenshots of
// both pages go to docs/.
// Run by run.mjs in its own process (it switches the provider's user for a moment).
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { browse } from '../lib/browser.mjs';
import { MemoryProvider } from '../lib/memory-provider.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const docs = path.join(here, '../../docs');
const redirectUrl = 'http://127.0.0.1:31683/callback';
// As the machine's notes say: without the background-networking flags, Chromium keeps
// trying hosts this closed network refuses.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync'];

function check(ok, what) {
  if (!ok) throw new Error(what);
  console.log(`ok: ${what}`);
}

/** An SDK client logged in through the proxy (the scripted browser plays the user). */
async function connected(mcpUrl, name) {
  const provider = new MemoryProvider(redirectUrl, name);
  const connect = async () => {
    const client = new Client({ name, version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
    return client;
  };
  try {
    await connect();
    throw new Error('connected without authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  const back = await browse(provider.authorizationUrl, redirectUrl);
  await new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }).finishAuth(new URL(back).searchParams.get('code'));
  const client = await connect();
  await client.callTool({ name: 'whoami', arguments: {} });
  return { client, provider, connect };
}

/** Whether a call with the client's current token is refused (its refresh too, so the
 * SDK asks for a new authorization). */
async function refused(session) {
  try {
    const client = await session.connect();
    await client.callTool({ name: 'whoami', arguments: {} });
    return false;
  } catch (e) {
    return e instanceof UnauthorizedError || /401|invalid_grant|Unauthorized/i.test(String(e));
  }
}

export async function runPages({ publicUrl, mcpUrl, setUser }) {
  const browser = await chromium.launch({ executablePath: process.env.MOP_CHROMIUM ?? '/usr/bin/chromium', args: FLAGS });
  try {
    const user = await connected(mcpUrl, 'Interop Notes App');
    const other = await connected(mcpUrl, 'Interop Agent');

    // The user's page: log in (one provider: straight there and back), see, revoke.
    const context = await browser.newContext({ viewport: { width: 1100, height: 700 } });
    const page = await context.newPage();
    await page.goto(`${publicUrl}/account`);
    await page.getByRole('heading', { name: 'Connected applications' }).waitFor();
    check(await page.getByText('Interop Notes App').count() > 0, 'the account page lists the connected client');
    await page.screenshot({ path: path.join(docs, 'account-page.png'), fullPage: true });
    await Promise.all([
      page.waitForResponse((r) => r.url().endsWith('/account/revoke')),
      page.getByRole('button', { name: /^Revoke Interop Notes App/ }).click(),
    ]);
    await page.waitForLoadState('load');
    check(await page.getByText('Interop Notes App').count() === 0, 'the revoked client is gone from the page');
    check(await refused(user), "the revoked client's next call is refused");
    check(!(await refused(other)), 'the other connection still works');

    // A form from another site: Chromium sends no SameSite=Lax cookie with it.
    const grant = await page.locator('input[name="grant"]').first().getAttribute('value');
    const evil = http.createServer((_, res) => res.writeHead(200, { "content-type": "text/html" }).end(`<form method="post" action="${publicUrl}/account/revoke">
      <input name="grant" value="${grant}"><button>go</button></form>`));
    await new Promise((r) => evil.listen(0, 'localhost', r));
    const evilPage = await context.newPage();
    await evilPage.goto(`http://localhost:${evil.address().port}/`);
    evilPage.on('requestfailed', (r) => console.log(`request failed: ${r.url()} ${r.failure()?.errorText}`));
    const [answer] = await Promise.all([
      evilPage.waitForResponse((r) => r.url().endsWith('/account/revoke'), { timeout: 10_000 }),
      evilPage.click('button'),
    ]);
    evil.close();
    check(answer.status() === 403, `a cross-site form post is refused (${answer.status()})`);
    check(!(await refused(other)), 'and revoked nothing');

    // The operator (the same user, named in [admin]) revokes the other connection.
    const ops = await browser.newContext({ viewport: { width: 1300, height: 700 } });
    const console_ = await ops.newPage();
    await console_.goto(`${publicUrl}/admin`); // no session yet: the login, and back
    await console_.getByRole('heading', { name: 'Servers' }).waitFor();
    const otherId = other.provider.saved.client.client_id;
    await console_.goto(`${publicUrl}/admin/grants?client=${encodeURIComponent(otherId)}`);
    await console_.getByRole('heading', { name: 'Grants' }).waitFor();
    await console_.screenshot({ path: path.join(docs, 'admin-grants.png'), fullPage: true });
    await Promise.all([
      console_.waitForResponse((r) => r.url().endsWith('/admin/grants/revoke')),
      console_.getByRole('button', { name: /^Revoke the grant of johndoe/ }).first().click(),
    ]);
    await console_.waitForLoadState('load');
    check(await refused(other), "the operator's revocation is refused at the client's next call");
    await console_.goto(`${publicUrl}/admin/audit?event=grant.revoked`);
    const trail = await console_.locator('table').innerText();
    check(trail.includes('by: admin') && trail.includes('by: user'), 'the audit view shows both revocations');
    await console_.screenshot({ path: path.join(docs, 'admin-audit.png'), fullPage: true });

    // Someone else is no operator.
    setUser({ sub: 'mallory', email: 'mallory@interop.example', email_verified: true, groups: [] });
    try {
      const stranger = await (await browser.newContext()).newPage();
      const response = await stranger.goto(`${publicUrl}/admin`);
      check(response.status() === 403 && (await stranger.content()).includes('not one of this proxy'), 'a non-operator is refused');
    } finally {
      setUser(null);
    }
  } finally {
    await browser.close();
  }
}

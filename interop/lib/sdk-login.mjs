// The TypeScript SDK client's first connection, as the interop clients make it: refused
// with 401 (the SDK has registered and sent the user to authorize), the stand-in browser
// logs in, the SDK redeems the code, and the client connects again.
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { browse } from './browser.mjs';

/** `connect()` once logged in; `transport()` makes a transport with the same provider. */
export async function connectLoggedIn({ provider, redirectUrl, transport, connect }) {
  try {
    await connect();
    throw new Error('connected without authorization');
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
  }
  const back = await browse(provider.authorizationUrl, redirectUrl);
  const code = new URL(back).searchParams.get('code');
  if (!code) throw new Error(`no code: ${back}`);
  await transport().finishAuth(code);
  return connect();
}

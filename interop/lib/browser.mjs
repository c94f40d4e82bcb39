// A small headless "browser" that stands in for the user: it follows redirects one at a
// time, keeps cookies, approves the proxy's consent page by submitting its form, and
// stops when it is sent to the client's redirect URI, which it returns.
export async function browse(url, redirectPrefix, { maxHops = 20 } = {}) {
  const cookies = new Map();
  let method = 'GET';
  let body;
  for (let hop = 0; hop < maxHops; hop++) {
    if (url.startsWith(redirectPrefix)) return url;
    const headers = { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') };
    if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
    const res = await fetch(url, { method, headers, body, redirect: 'manual' });
    for (const c of res.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const i = pair.indexOf('=');
      cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    if (res.status >= 300 && res.status < 400) {
      url = new URL(res.headers.get('location'), url).toString();
      method = 'GET';
      body = undefined;
      continue;
    }
    const html = await res.text();
    if (res.status === 200 && html.includes('name="decision"')) {
      const form = new URLSearchParams();
      for (const m of html.matchAll(/<input type="hidden" name="([^"]*)" value="([^"]*)">/g)) {
        form.append(unescape(m[1]), unescape(m[2]));
      }
      form.append('decision', 'approve');
      url = new URL(unescape(html.match(/<form method="post" action="([^"]*)"/)[1]), url).toString();
      method = 'POST';
      body = form.toString();
      continue;
    }
    throw new Error(`browser stuck at ${new URL(url).pathname}: HTTP ${res.status}: ${html.slice(0, 300)}`);
  }
  throw new Error('too many redirects');
}

function unescape(s) {
  return s
    .replaceAll('&quot;', '"').replaceAll('&#x27;', "'").replaceAll('&#x2F;', '/')
    .replaceAll('&lt;', '<').replaceAll('&gt;', '>').replaceAll('&amp;', '&');
}

// As a command, for clients in other languages: `node lib/browser.mjs URL REDIRECT_PREFIX`
// prints the URL the client's redirect URI received.
if (import.meta.url === `file://${process.argv[1]}`) {
  browse(process.argv[2], process.argv[3]).then(
    (u) => console.log(u),
    (e) => { console.error(e.message); process.exit(1); },
  );
}

/** Plays the whole browser part for clients that open a real browser and listen on a
 * loopback callback themselves: follows the login, then delivers the code there. */
export async function browseAndDeliver(url, redirectPrefix) {
  const back = await browse(url, redirectPrefix);
  const res = await fetch(back);
  if (!res.ok) throw new Error(`the client's callback answered ${res.status}`);
  return back;
}

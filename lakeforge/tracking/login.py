"""The web UI's sign-in: a browser cannot send a Bearer header, so a Lakeforge token entered once
is kept in an HttpOnly, SameSite=Strict cookie that the platform middleware also accepts."""

from __future__ import annotations

import html

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Lakeforge - sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; background: #f5f6f8; display: flex; justify-content: center;
       align-items: center; min-height: 100vh; margin: 0; }}
form {{ background: #fff; padding: 2rem; border-radius: 8px; box-shadow: 0 1px 4px #0002; width: 24rem; }}
h1 {{ font-size: 1.3rem; margin-top: 0; }}
input {{ width: 100%; box-sizing: border-box; padding: .5rem; margin: .5rem 0 1rem; font-family: monospace; }}
button {{ padding: .5rem 1.2rem; }}
.error {{ color: #b00020; }}
</style></head>
<body><form method="post" action="/login">
<h1>Sign in to Lakeforge</h1>
{error}
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="off" autofocus required>
<button type="submit">Sign in</button>
<p><small>Use a personal access token (<code>lakeforge tokens create</code>) or the admin token.</small></p>
</form></body></html>
"""


def page(error: str | None = None) -> str:
    return PAGE.format(error=f'<p class="error">{html.escape(error)}</p>' if error else "")

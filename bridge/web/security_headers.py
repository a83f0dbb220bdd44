"""The Content-Security-Policy of the pages: no inline script, nothing from outside. A leaf, so the
application and the pages that relax it for one response (Show images, a sign-in button's provider)
share one text without importing each other."""

from __future__ import annotations

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
# "Show images" on a message page: remote images may load there, nothing else changes
CSP_IMAGES = CSP.replace("img-src 'self' data:", "img-src 'self' data: https: http:")

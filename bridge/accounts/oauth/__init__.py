"""OAuth 2 for mail accounts: provider presets, registered clients, sign-in flows and tokens (authlib)."""

import warnings

import authlib.deprecate  # noqa: F401 - installs authlib's own "always" filter; ours below goes before it

# authlib's httpx integration announces a move to a renamed httpx package; the API used here is unchanged
warnings.filterwarnings("ignore", message="The httpx module is deprecated")

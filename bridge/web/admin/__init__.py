"""Admin pages: employees, SMTP accounts, IMAP servers, OAuth clients, aliases, portal settings (admins only)."""

from bridge.web.admin import aliases, employees, imap, oauth, settings, smtp

routers: list = [employees.router, smtp.router, imap.router, oauth.router, aliases.router, settings.router]

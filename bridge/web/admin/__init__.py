"""Admin pages: employees, SMTP accounts, IMAP servers, aliases, portal settings (admins only)."""

from bridge.web.admin import aliases, employees, imap, settings, smtp

routers: list = [employees.router, smtp.router, imap.router, aliases.router, settings.router]

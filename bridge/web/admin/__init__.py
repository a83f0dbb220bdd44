"""Admin pages: employees, SMTP accounts, IMAP servers, OAuth clients, aliases, portal settings, the audit log,
one candidate's erasure and export (admins only)."""

from bridge.web.admin import aliases, audit_log, candidates, employees, imap, oauth, settings, smtp

routers: list = [employees.router, smtp.router, imap.router, oauth.router, aliases.router, settings.router,
                 audit_log.router, candidates.router]

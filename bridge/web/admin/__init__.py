"""Admin pages: employees, SMTP accounts, IMAP servers, aliases, portal settings."""

routers: list = []

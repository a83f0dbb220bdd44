"""Set-up records and who may act: employees, SMTP accounts, IMAP servers, aliases, passwords, API tokens
and OAuth sign-in. Shared by the CLI and the admin pages."""

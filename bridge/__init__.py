"""Everything that touches the outside: SMTP, IMAP, the database session, the CLI."""

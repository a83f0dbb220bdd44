"""The IMAP source: polled folders (catch-all mailboxes numbered addresses land in), one pass or watched."""

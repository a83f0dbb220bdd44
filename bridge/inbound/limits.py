"""What every inbound source takes at most: a leaf module, so the lean `ingest` start-up can read it too."""

MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # the SMTP receiver announces it as SIZE; the pipe and IMAP keep to it too
MAX_HEADER_BYTES = 256 * 1024  # a header section above this is refused by SMTP (552) and read in part elsewhere

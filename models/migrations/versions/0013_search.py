"""search: full-text search over inbound messages, done by the database

SQLite: the FTS5 table inbound_search over the message's own columns (external content), kept in step by
triggers. PostgreSQL: a stored generated tsvector column, weighted (subject first, then sender and
attachment names, then the reply text), with a GIN index. Both split text alike: on anything that is not a
letter or digit, in lower case, diacritics removed (FTS5's unicode61 tokenizer; on PostgreSQL the function
inbound_search_text does the same before the 'simple' configuration reads it), so `ana`, `lopez`, `example`
and `ana.lopez@example.com` all find ana.lopez@example.com on both.

Revision ID: 0013
Revises: 0012
"""
import unicodedata

from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None

COLUMNS = "from_addr, from_name, subject, reply_text, attachment_names"
# PostgreSQL's tsvector holds at most 1 MB: the reply text it indexes is cut at this many characters
PG_TEXT_CHARS = 100_000


def _values(prefix: str) -> str:
    return ", ".join(f"{prefix}.{column.strip()}" for column in COLUMNS.split(","))


# prefix indexes of 1 to 3 characters: every word searched for is a prefix, and a short one would otherwise
# merge the lists of thousands of words
SQLITE = [
    f"CREATE VIRTUAL TABLE inbound_search USING fts5({COLUMNS}, content='inbound_message', content_rowid='id', "
    "tokenize='unicode61 remove_diacritics 2', prefix='1 2 3')",
    f"""CREATE TRIGGER inbound_search_insert AFTER INSERT ON inbound_message BEGIN
  INSERT INTO inbound_search(rowid, {COLUMNS}) VALUES (new.id, {_values('new')});
END""",
    f"""CREATE TRIGGER inbound_search_delete AFTER DELETE ON inbound_message BEGIN
  INSERT INTO inbound_search(inbound_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {_values('old')});
END""",
    f"""CREATE TRIGGER inbound_search_update AFTER UPDATE OF {COLUMNS} ON inbound_message BEGIN
  INSERT INTO inbound_search(inbound_search, rowid, {COLUMNS}) VALUES ('delete', old.id, {_values('old')});
  INSERT INTO inbound_search(rowid, {COLUMNS}) VALUES (new.id, {_values('new')});
END""",
    "INSERT INTO inbound_search(inbound_search) VALUES ('rebuild')",
]


def _diacritics() -> tuple[str, str]:
    """Latin letters with diacritics and their bare letters (as unicode61's remove_diacritics folds them),
    for translate(): the letters of Latin-1, Latin Extended-A and -B and Latin Extended Additional."""
    found, bare = [], []
    for code in [*range(0xC0, 0x250), *range(0x1E00, 0x1F00)]:
        letter = chr(code)
        folded = "".join(c for c in unicodedata.normalize("NFD", letter.lower()) if not unicodedata.combining(c))
        if len(folded) == 1 and folded != letter and folded.isalnum():
            found.append(letter)
            bare.append(folded)
    return "".join(found), "".join(bare)


def _folded(utf8: bool) -> str:
    """SQL for `value` in lower case without diacritics. In a UTF-8 database: plain ASCII as it is, other text
    decomposed (NFD) with its combining marks dropped, which gives what the translate table gives for every
    Latin letter in it at a thirteenth of the cost (60 instead of 800 microseconds for a 500-character
    reply, paid at each insert and at each update of an indexed column). Elsewhere normalize() is not
    available: the table."""
    if utf8:
        return (r"CASE WHEN value ~ '[^[:ascii:]]' THEN regexp_replace(normalize(lower(value), NFD), '[\u0300-\u036f]+', "
                "'', 'g') ELSE lower(coalesce(value, '')) END")
    letters, bare = _diacritics()
    return f"translate(lower(coalesce(value, '')), '{letters}', '{bare}')"


def _postgres() -> list[str]:
    utf8 = op.get_bind().exec_driver_sql("SHOW server_encoding").scalar() == "UTF8"
    return [
        # the text as FTS5's tokenizer sees it: lower case, no diacritics, words apart at anything else
        f"""CREATE FUNCTION inbound_search_text(value text) RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT regexp_replace({_folded(utf8)}, '[^[:alnum:]]+', ' ', 'g')
$$""",
        f"""ALTER TABLE inbound_message ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
  setweight(to_tsvector('simple'::regconfig, inbound_search_text(subject)), 'A') ||
  setweight(to_tsvector('simple'::regconfig, inbound_search_text(
    coalesce(from_addr, '') || ' ' || coalesce(from_name, '') || ' ' || coalesce(attachment_names, ''))), 'B') ||
  setweight(to_tsvector('simple'::regconfig, inbound_search_text(left(reply_text, {PG_TEXT_CHARS}))), 'D')
) STORED""",
        "CREATE INDEX ix_inbound_message_search ON inbound_message USING gin (search_vector)",
    ]


def upgrade() -> None:
    statements = SQLITE if op.get_bind().dialect.name == "sqlite" else _postgres()
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("inbound_search_insert", "inbound_search_delete", "inbound_search_update"):
            op.execute(f"DROP TRIGGER {trigger}")
        op.execute("DROP TABLE inbound_search")
        return
    op.execute("DROP INDEX ix_inbound_message_search")
    op.execute("ALTER TABLE inbound_message DROP COLUMN search_vector")
    op.execute("DROP FUNCTION inbound_search_text(text)")

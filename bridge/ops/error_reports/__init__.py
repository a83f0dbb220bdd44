"""Error reports to the admin by mail: the rules (when), the records (what holds now) and the mail."""

"""What retention removed, on the Mail Log page (admins only: the tally has no per-employee data), and the
retention settings on the admin settings page, against a real `serve`."""

from __future__ import annotations

from tests.helpers import aged_rows as aged
from tests.servers.web import Served, signed_in_client


def test_admins_see_what_retention_removed_from_the_mail_log(web: Served) -> None:
    b = web.bridge
    b.run("settings", "set", "keep_mail_log_days", "60")
    engine = b.engine()
    for days, status in ((70, "sent"), (75, "sent"), (90, "undeliverable")):
        aged.outbound(engine, days, status=status)
    aged.outbound(engine, 5, status="sent")
    b.run("retention", "run")
    with signed_in_client(web, "admin@example.test") as (http, _csrf):
        page = http.get("/log").text
    assert "Removed by retention" in page
    assert f"3 older entries, queued from {aged.ago(90).date().isoformat()} to {aged.ago(70).date().isoformat()}" \
        in page
    assert "<td>2</td>" in page and "<td>1</td>" in page
    with signed_in_client(web, "ana@example.test") as (http, _csrf):
        page = http.get("/log").text
    assert "Interview" in page and "Removed by retention" not in page


def test_the_settings_page_shows_each_retention_setting_with_a_label(web: Served) -> None:
    web.bridge.run("settings", "set", "keep_dismissed_days", "14")
    with signed_in_client(web, "admin@example.test") as (http, _csrf):
        page = http.get("/admin/settings").text
    for label in ("Keep received mail (days)", "Keep Mail Log entries (days)", "Keep dismissed messages (days)",
                  "Keep audit log (days)"):
        assert label in page
    assert 'name="keep_dismissed_days"' in page and 'value="14"' in page

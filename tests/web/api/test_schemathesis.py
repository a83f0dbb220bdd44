"""Schemathesis against /api/v1/openapi.json of a real `serve`: no operation answers 5xx, whatever it is sent.

Every operation gets generated valid and invalid requests (ids that exist and ones that do not,
bad bodies, odd strings) with an admin token; a little data is stored first so the 200 paths run too.
"""

from __future__ import annotations

import json

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.servers.web import Served

HTML_MAIL = ("From: Cand <cand@example.org>\r\nTo: jobs+1042@example.test\r\nSubject: CV\r\n"
             "Message-ID: <st-html@example.org>\r\nMIME-Version: 1.0\r\n"
             "Content-Type: multipart/mixed; boundary=XX\r\n\r\n"
             "--XX\r\nContent-Type: text/html\r\n\r\n<p>Hi</p><script>x()</script>\r\n"
             "--XX\r\nContent-Type: application/pdf; name=cv.pdf\r\n"
             "Content-Disposition: attachment; filename=cv.pdf\r\n\r\n%PDF\r\n--XX--\r\n")
PHASES = (Phase.explicit, Phase.generate)  # no shrinking: a failure is reported as found, quickly


def _plain(n: int) -> str:
    return (f"From: c{n}@example.org\r\nTo: jobs@example.test\r\nSubject: Hello {n}\r\n"
            f"Message-ID: <st-{n}@example.org>\r\n\r\nIs the job open?\r\n")


def _seed(web: Served) -> str:
    """Some messages (one with HTML and an attachment), a Mail Log entry and an admin token."""
    b = web.bridge
    for message in (HTML_MAIL, _plain(1), _plain(2), _plain(3)):
        b.run("ingest", "-", stdin=message)
    b.run("send", "--employee", "1042", "--to", "cand@example.org", "--subject", "Hi", "--body", "Hello")
    assert len(json.loads(b.run("messages", "list", "--json").stdout)) == 4
    return b.run("token", "create", "fuzz", "--admin").stdout.strip()


def test_no_operation_answers_5xx(web: Served) -> None:
    headers = {"Authorization": f"Bearer {_seed(web)}"}
    base_url = f"{web.base_url}/api/v1"
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == 10  # with DELETE /candidates/{address} and its GET .../export
    calls: dict[str, int] = {}
    failures: list[str] = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            @settings(max_examples=25, deadline=None, derandomize=True, database=None, phases=PHASES,
                      suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: schemathesis.Case) -> None:
                response = case.call(base_url=base_url, headers=headers, timeout=15)
                calls[case.operation.label] = calls.get(case.operation.label, 0) + 1
                case.validate_response(response, checks=[not_a_server_error], headers=headers)

            try:
                run()
            except Exception as err:  # noqa: BLE001 - every operation is tried; all failures are reported
                failures.append(f"{operation.label} ({mode}): {err}")
    assert not failures, "\n\n".join(failures)
    assert set(calls) == {op.label for op in operations} and min(calls.values()) >= 10, calls

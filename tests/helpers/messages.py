"""Messages the tests send in: a candidate's reply, a delivery status notification, a numbered reply."""

from __future__ import annotations


def reply(mid: str, sender: str, to: str, subject: str = "Re: Interview", in_reply_to: str = "",
          extra: str = "", body: str = "Thank you, Monday works.\r\n") -> str:
    irt = f"In-Reply-To: {in_reply_to}\r\nReferences: {in_reply_to}\r\n" if in_reply_to else ""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{mid}>\r\n"
            f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{irt}{extra}Content-Type: text/plain; charset=utf-8\r\n"
            f"\r\n{body}")


def dsn(original_mid: str, recipient: str, action: str = "failed", status: str = "5.1.1",
        diag: str = "550 5.1.1 <cand@example.org>: Recipient address rejected: User unknown") -> str:
    return ("From: MAILER-DAEMON@mx.example.org (Mail Delivery System)\r\n"
            "To: jobs+1042@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
            "Message-ID: <dsn-" + status + "@mx.example.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
            "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n\r\n"
            "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.org\r\n\r\n"
            f"Final-Recipient: rfc822; {recipient}\r\nAction: {action}\r\nStatus: {status}\r\n"
            f"Diagnostic-Code: smtp; {diag}\r\n\r\n"
            "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
            f"From: jobs+1042@example.test\r\nTo: {recipient}\r\nSubject: Interview\r\nMessage-ID: {original_mid}\r\n"
            "\r\n--B--\r\n")


KNOWN, UNKNOWN = "jobs+1042@example.test", "jobs+9999@example.test"


def candidate(n: int, to: str = KNOWN, body: str = "Thank you, Monday works.\r\n") -> bytes:
    return reply(f"r{n}@cand.example", f"Cand {n} <c{n}@cand.example>", to, body=body).encode()

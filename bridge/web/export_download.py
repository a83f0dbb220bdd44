"""One candidate's export as a download, for the admin page and the API alike: the zip written to a
temporary file (an export can be large), the export's audit entry committed, then the bytes."""

from __future__ import annotations

import tempfile
from urllib.parse import quote

from fastapi.responses import Response
from sqlmodel import Session

from bridge.privacy import export


def zip_download(session: Session, address: str) -> Response:
    with tempfile.TemporaryFile() as target:
        export.export(session, address, target)
        session.commit()  # the export's audit entry
        target.seek(0)
        data = target.read()
    name = quote(f"candidate-{address}.zip", safe="")
    return Response(data, media_type="application/zip",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{name}"})

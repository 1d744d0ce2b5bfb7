"""An issued invoice's documents: its JSON and its PDF, kept in S3, handed out as short-lived links.

`render_pdf` (pure; layout in `documents_pdf`) and `render_json` turn the invoice's wire shape
(notes/invoice-spec.md) into bytes. `DocumentStore.put` writes both under
`invoices/<customer_id>/<invoice_id>/<number>.{json,pdf}`; the invoicing core calls it when an
invoice is issued, and `links` when it renders `documents` (presigned GETs, 15 minutes by default).

Idempotent: the same invoice renders to the same bytes, and each object is written with
`If-None-Match: *`, so a re-run (a retried issue, a crash between the two writes) leaves the first
copy in place and adds no version to the versioned bucket. The first write wins: an issued
invoice's documents are its record, not a cache to refresh. The `documents` member (the links
themselves, which expire) is left out of the JSON document.

The S3 client needs only s3:PutObject for `put` and s3:GetObject on the objects for the links to
work (presigning itself makes no call; the URL carries the signer's rights).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from botocore.exceptions import ClientError

DEFAULT_TTL = timedelta(minutes=15)
PREFIX = "invoices"
_CONDITIONAL_CONFLICT_RETRIES = 3  # S3's 409 for two conditional writes racing on one key


@dataclass(frozen=True)
class DocumentKeys:
    json: str
    pdf: str


def document_keys(invoice: Mapping[str, Any]) -> DocumentKeys:
    """`invoices/<customer_id>/<invoice_id>/<number>.json|.pdf`; each part must be one path segment."""
    named = {
        "customer.id": (invoice.get("customer") or {}).get("id"),
        "id": invoice.get("id"),
        "number": invoice.get("number"),
    }
    parts: list[str] = []
    for name, part in named.items():
        if not isinstance(part, str) or not part or "/" in part or part in (".", ".."):
            raise ValueError(f"invoice {name} {part!r} cannot name a document (one non-empty path segment)")
        parts.append(part)
    stem = "/".join([PREFIX, *parts])
    return DocumentKeys(json=f"{stem}.json", pdf=f"{stem}.pdf")


def render_json(invoice: Mapping[str, Any]) -> bytes:
    """The invoice as its JSON document: sorted keys, two-space indent, without the expiring links."""
    document = {k: v for k, v in invoice.items() if k != "documents"}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


def render_pdf(invoice: Mapping[str, Any], locale: str = "en") -> bytes:
    """The invoice as a PDF (deterministic bytes); see shared/invoices/documents_pdf.py."""
    # reportlab and Babel load here, not with the module: only the invoice function renders.
    from shared.invoices.documents_pdf import render

    return render(invoice, locale)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


class DocumentStore:
    def __init__(self, s3: Any, bucket: str, locale: str = "en") -> None:
        self.s3 = s3
        self.bucket = bucket
        self.locale = locale

    def put(self, invoice: Mapping[str, Any]) -> DocumentKeys:
        """Write the invoice's JSON and PDF once; calling again with the same invoice changes nothing."""
        keys = document_keys(invoice)
        filename = keys.pdf.rsplit("/", 1)[1]
        self._put_once(keys.json, render_json(invoice), "application/json", filename[:-4] + ".json")
        self._put_once(keys.pdf, render_pdf(invoice, self.locale), "application/pdf", filename)
        return keys

    def _put_once(self, key: str, body: bytes, content_type: str, filename: str) -> None:
        for attempt in range(_CONDITIONAL_CONFLICT_RETRIES):
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentType=content_type,
                    ContentDisposition=f'inline; filename="{filename}"',
                    IfNoneMatch="*",
                )
                return
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code == "PreconditionFailed":
                    return  # written before: the first copy is the record
                if code != "ConditionalRequestConflict" or attempt == _CONDITIONAL_CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))  # another writer is mid-write on this key

    def links(
        self, keys: DocumentKeys, now: datetime, ttl: timedelta = DEFAULT_TTL
    ) -> dict[str, dict[str, str]]:
        """Presigned GETs: `{"json": {"url", "expires_at"}, "pdf": {...}}`.

        `now` is the wall clock (the Clock seam), never a customer's test-clock time: S3 checks the
        signature's expiry against real time.
        """
        seconds = int(ttl.total_seconds())
        if seconds <= 0:
            raise ValueError("a document link needs a positive ttl")
        expires_at = _rfc3339(now + timedelta(seconds=seconds))
        return {
            kind: {
                "url": self.s3.generate_presigned_url(
                    "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=seconds
                ),
                "expires_at": expires_at,
            }
            for kind, key in (("json", keys.json), ("pdf", keys.pdf))
        }

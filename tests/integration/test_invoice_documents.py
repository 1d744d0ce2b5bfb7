"""Invoice documents in S3 (moto): written once under their keys, re-runs change nothing, links fetch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import orjson
import pytest
import requests

from shared import bootstrap
from shared.invoices.documents import DocumentKeys, DocumentStore, render_json, render_pdf
from tests.support.harness import Stack
from tests.support.invoice_documents import realistic_invoice

NOW = datetime(2026, 12, 1, 1, 0, 5, tzinfo=UTC)


@pytest.fixture
def store(stack: Stack) -> DocumentStore:
    bootstrap.document_store.cache_clear()
    return bootstrap.document_store()


def _objects(stack: Stack, store: DocumentStore) -> dict[str, dict[str, Any]]:
    s3 = stack.clients["s3"]
    out = {}
    for item in s3.list_objects_v2(Bucket=store.bucket).get("Contents", []):
        got = s3.get_object(Bucket=store.bucket, Key=item["Key"])
        out[item["Key"]] = {
            "body": got["Body"].read(),
            "content_type": got["ContentType"],
            "disposition": got.get("ContentDisposition"),
        }
    return out


def test_put_writes_json_and_pdf_under_the_invoice_keys(stack: Stack, store: DocumentStore) -> None:
    invoice = realistic_invoice()
    keys = store.put(invoice)
    prefix = "invoices/01JCUST0000000000000000007/01JINV00000000000000000042/NWA-2026-000042"
    assert keys == DocumentKeys(json=f"{prefix}.json", pdf=f"{prefix}.pdf")
    objects = _objects(stack, store)
    assert set(objects) == {keys.json, keys.pdf}
    assert objects[keys.json]["content_type"] == "application/json"
    assert orjson.loads(objects[keys.json]["body"]) == invoice
    assert objects[keys.json]["body"] == render_json(invoice)
    assert objects[keys.pdf]["content_type"] == "application/pdf"
    assert objects[keys.pdf]["body"] == render_pdf(invoice)
    assert objects[keys.pdf]["disposition"] == 'inline; filename="NWA-2026-000042.pdf"'


def test_put_twice_leaves_identical_objects_and_no_new_version(stack: Stack, store: DocumentStore) -> None:
    s3 = stack.clients["s3"]
    # The deployed bucket is versioned (infra/constructs/data.py): a rewrite would add a version.
    s3.put_bucket_versioning(Bucket=store.bucket, VersioningConfiguration={"Status": "Enabled"})
    invoice = realistic_invoice()
    first_keys = store.put(invoice)
    first = _objects(stack, store)
    # A retried issue renders the invoice again (here with fresh links attached): nothing changes.
    again = {**copy.deepcopy(invoice), "documents": store.links(first_keys, NOW)}
    assert store.put(again) == first_keys
    assert _objects(stack, store) == first
    versions = s3.list_object_versions(Bucket=store.bucket)["Versions"]
    assert sorted(v["Key"] for v in versions) == sorted([first_keys.json, first_keys.pdf])


def test_first_write_wins(stack: Stack, store: DocumentStore) -> None:
    invoice = realistic_invoice()
    keys = store.put(invoice)
    changed = copy.deepcopy(invoice)
    changed["updated_at"] = "2026-12-01T02:00:00Z"
    store.put(changed)
    assert orjson.loads(_objects(stack, store)[keys.json]["body"])["updated_at"] == invoice["updated_at"]


def test_links_are_presigned_gets_that_fetch_the_documents(stack: Stack, store: DocumentStore) -> None:
    invoice = realistic_invoice()
    keys = store.put(invoice)
    links = store.links(keys, NOW)
    assert set(links) == {"json", "pdf"}
    for kind, key in (("json", keys.json), ("pdf", keys.pdf)):
        link = links[kind]
        assert link["expires_at"] == "2026-12-01T01:15:05Z"
        url = urlparse(link["url"])
        assert url.path.endswith(key)
        assert parse_qs(url.query)["X-Amz-Expires"] == ["900"]
        response = requests.get(link["url"], timeout=10)
        assert response.status_code == 200
    assert requests.get(links["json"]["url"], timeout=10).content == render_json(invoice)
    assert requests.get(links["pdf"]["url"], timeout=10).content.startswith(b"%PDF-")


def test_links_take_a_ttl(stack: Stack, store: DocumentStore) -> None:
    keys = store.put(realistic_invoice())
    link = store.links(keys, NOW, ttl=timedelta(hours=1))["pdf"]
    assert link["expires_at"] == "2026-12-01T02:00:05Z"
    assert parse_qs(urlparse(link["url"]).query)["X-Amz-Expires"] == ["3600"]
    with pytest.raises(ValueError, match="positive ttl"):
        store.links(keys, NOW, ttl=timedelta(0))


def test_an_invoice_that_cannot_name_its_documents_writes_nothing(stack: Stack, store: DocumentStore) -> None:
    invoice = realistic_invoice()
    invoice["number"] = "../escape"
    with pytest.raises(ValueError, match="number"):
        store.put(invoice)
    assert _objects(stack, store) == {}

"""The invoice PDF (shared/invoices/documents_pdf.py) read back the way a person or an AP system would:
text extracted with pypdf, page 1 rasterised with pypdfium2. Totals are the hand-worked ones of
tests/support/invoice_documents.py."""

from __future__ import annotations

import copy
import io
import re
from decimal import Decimal
from typing import Any

import orjson
import pypdfium2
import pytest
from iso4217 import Currency
from pypdf import PdfReader

from shared.invoices.documents import document_keys, render_json, render_pdf
from shared.invoices.documents_pdf import Money
from tests.support.invoice_documents import (
    detailed,
    in_currency,
    line,
    many_lines_invoice,
    realistic_invoice,
    totals,
)

A4_POINTS = (210 / 25.4 * 72, 297 / 25.4 * 72)  # 595.28 x 841.89 pt
A4_PIXELS = (596, 842)  # rendered at 72 dpi, partial pixels rounded up


def pages_text(pdf: bytes) -> list[list[str]]:
    """Each page's text as stripped, non-empty lines (non-breaking spaces read as spaces)."""
    reader = PdfReader(io.BytesIO(pdf))
    return [
        [ln.strip() for ln in (page.extract_text() or "").replace("\u00a0", " ").splitlines() if ln.strip()]
        for page in reader.pages
    ]


def all_lines(pdf: bytes) -> list[str]:
    return [ln for page in pages_text(pdf) for ln in page]


def totals_block(lines: list[str]) -> list[tuple[str, str]]:
    """The (label, value) pairs from "Subtotal" to "Total (...)"."""
    start = lines.index("Subtotal")
    pairs = list(zip(lines[start::2], lines[start + 1 :: 2], strict=False))
    end = next(i for i, (label, _) in enumerate(pairs) if label.startswith("Total ("))
    return pairs[: end + 1]


@pytest.fixture(scope="module")
def invoice() -> dict[str, Any]:
    return realistic_invoice()


@pytest.fixture(scope="module")
def pdf(invoice: dict[str, Any]) -> bytes:
    return render_pdf(invoice)


def test_fixture_totals_are_the_sums_of_its_line_totals(invoice: dict[str, Any]) -> None:
    # The hand-worked numbers agree with the spec's rules before the PDF is asked to show them.
    for key in invoice["totals"]:
        assert Decimal(invoice["totals"][key]) == sum(Decimal(ln["totals"][key]) for ln in invoice["lines"])
    assert invoice["totals"]["total"] == "122.10"


def test_totals_block_shows_every_total(pdf: bytes) -> None:
    assert totals_block(all_lines(pdf)) == [
        ("Subtotal", "$112.00"),
        ("Charges (minimum spend)", "$20.00"),
        ("Discounts", "-$4.90"),
        ("Credits", "-$5.00"),
        ("Taxes", "$0.00"),
        ("Total (USD)", "$122.10"),
    ]


def test_identity_dates_and_parties(pdf: bytes) -> None:
    lines = all_lines(pdf)
    text = "\n".join(lines)
    start = lines.index("Invoice number")
    meta = dict(zip(lines[start : start + 10 : 2], lines[start + 1 : start + 10 : 2], strict=True))
    assert meta["Invoice number"] == "NWA-2026-000042"
    assert meta["Issue date"] == "2026-12-01"
    assert meta["Due date"] == "2026-12-31"
    assert meta["Currency"] == "USD"
    assert meta["Service period"] == "2026-11-01 \u2013 2026-12-31"  # Nov usage + Dec in-advance fee
    supplier = lines[lines.index("FROM") + 1 : lines.index("BILL TO")]
    assert supplier == [
        "Northwind Analytics Inc.",
        "500 Howard Street",
        "Suite 300",
        "San Francisco, CA 94105",
        "US",
        "Tax ID: US94-1234567",
    ]
    customer = lines[lines.index("BILL TO") + 1 : lines.index("Description")]
    assert customer == [
        "Contoso Ltd.",
        "1 Finsbury Avenue",
        "London EC2M 2PF",
        "GB",
        "Tax ID: GB123456789",
        "ap@contoso.example",
    ]
    assert "Please pay the total by 2026-12-31, quoting invoice number NWA-2026-000042." in text


def _rows(lines: list[str], first: str, last: str) -> list[str]:
    return lines[lines.index(first) : lines.index(last) + 1]


def test_lines_with_periods_quantities_prices_and_adjustments(pdf: bytes) -> None:
    lines = all_lines(pdf)
    assert _rows(lines, "Platform fee", "$44.10") == [
        "Platform fee",
        "Service period: 2026-12-01 \u2013 2026-12-31",  # in advance: the coming month
        "1",
        "$49.00",
        "$49.00",
        "Discount (10%)",
        "-$4.90",
        "Line total",
        "$44.10",
    ]
    assert _rows(lines, "API calls", "$28.00") == [
        "API calls",
        "Service period: 2026-11-01 \u2013 2026-11-30",  # [Nov 1, Dec 1) shown with its last day
        "25,000",
        "$33.00",
        "API calls: tier 1 (up to 1,000)",
        "1,000",
        "$0.00",
        "$0.00",
        "API calls: tier 2 (1,001 to 10,000)",
        "9,000",
        "$0.002",  # unit prices keep their extra decimals
        "$18.00",
        "API calls: tier 3 (over 10,000)",
        "15,000",
        "$0.001",
        "$15.00",
        "Credits applied",
        "-$5.00",
        "Line total",
        "$28.00",
    ]
    assert _rows(lines, "Storage", "$50.00") == [
        "Storage",
        "Service period: 2026-11-01 \u2013 2026-11-30",
        "120",
        "$0.25",
        "$30.00",
        "Storage: minimum spend",
        "1",
        "$20.00",
        "$20.00",
        "Line total",
        "$50.00",
    ]


def test_metadata_and_deterministic_bytes(invoice: dict[str, Any], pdf: bytes) -> None:
    assert render_pdf(copy.deepcopy(invoice)) == pdf
    info = PdfReader(io.BytesIO(pdf)).metadata
    assert info is not None
    assert info["/Title"] == "Invoice NWA-2026-000042"
    assert info["/Author"] == "Northwind Analytics Inc."
    assert info["/CreationDate"] == "D:20261201010005+00'00'"  # issued_at, not the wall clock
    changed = copy.deepcopy(invoice)
    changed["lines"][0]["name"] = "Platform fee (annual)"
    assert render_pdf(changed) != pdf


def test_page_one_renders_as_a4_with_ink(pdf: bytes) -> None:
    page = PdfReader(io.BytesIO(pdf)).pages[0]
    assert float(page.mediabox.width) == pytest.approx(A4_POINTS[0], abs=0.01)
    assert float(page.mediabox.height) == pytest.approx(A4_POINTS[1], abs=0.01)
    document = pypdfium2.PdfDocument(pdf)
    image = document[0].render(scale=1).to_pil().convert("L")
    assert image.size == A4_PIXELS
    histogram = image.histogram()
    dark = sum(histogram[:128]) / (image.size[0] * image.size[1])
    assert 0.005 < dark < 0.2, dark  # text and rules, on a white page
    assert image.getpixel((5, 5)) == 255  # margins are blank
    # The totals sit on the right half, below the lines: there is ink there.
    w, h = image.size
    right_lower = image.crop((w // 2, h // 2, w, h - 60))
    assert min(right_lower.getdata()) < 64  # type: ignore[type-var]
    document.close()


def test_sixty_lines_span_pages_with_totals_on_the_last() -> None:
    pages = pages_text(render_pdf(many_lines_invoice(60)))
    assert len(pages) >= 2
    for number, page in enumerate(pages, start=1):
        assert f"Page {number} of {len(pages)}" in page
        assert "Description" in page  # the table header repeats
    assert all("Subtotal" not in page for page in pages[:-1])
    assert totals_block(pages[-1])[-1] == ("Total (USD)", "$60.00")
    seats = [ln for page in pages for ln in page if ln.startswith("Seat ")]
    assert seats == [f"Seat {i:03d}" for i in range(1, 61)]  # each line once, in order


def _single_line(currency: str, quantity: str, unit: str, amount: str, discount: str) -> dict[str, Any]:
    invoice = in_currency(
        realistic_invoice(), currency, amount=amount, discounts_total=discount, credits_total="0"
    )
    invoice["lines"] = [
        line(
            "01JLINE0000000000000000009",
            "Seats",
            type_="flat_fee",
            quantity=quantity,
            per_unit_amount=unit,
            details=[detailed("seats", "Seats", quantity, unit, amount)],
            discounts=[{"reason": "ratecard_percentage", "amount": discount, "percentage": "10"}],
            line_totals=totals(amount=amount, discounts_total=discount),
        )
    ]
    return invoice


def test_jpy_has_no_decimals() -> None:
    # 3 x 5,000 = 15,000; 10% off = 1,500; total 13,500.
    lines = all_lines(render_pdf(_single_line("JPY", "3", "5000", "15000", "1500")))
    assert totals_block(lines) == [
        ("Subtotal", "¥15,000"),
        ("Charges (minimum spend)", "¥0"),
        ("Discounts", "-¥1,500"),
        ("Credits", "¥0"),
        ("Taxes", "¥0"),
        ("Total (JPY)", "¥13,500"),
    ]
    assert _rows(lines, "Seats", "¥13,500")[2:4] == ["3", "¥5,000"]


def test_kwd_has_three_decimals() -> None:
    # 2 x 6.1725 = 12.345; 10% off = 1.2345 -> 1.235 (half away from zero, done by rating); 11.110.
    lines = all_lines(render_pdf(_single_line("KWD", "2", "6.1725", "12.345", "1.235")))
    assert totals_block(lines) == [
        ("Subtotal", "KWD 12.345"),
        ("Charges (minimum spend)", "KWD 0.000"),
        ("Discounts", "-KWD 1.235"),
        ("Credits", "KWD 0.000"),
        ("Taxes", "KWD 0.000"),
        ("Total (KWD)", "KWD 11.110"),
    ]
    assert "KWD 6.1725" in lines  # the unit price keeps its 4th decimal


def test_a_symbol_the_font_lacks_becomes_the_iso_code() -> None:
    text = all_lines(render_pdf(_single_line("INR", "1", "1000.00", "1000.00", "100.00")))
    assert ("Total (INR)", "INR 900.00") in totals_block(text)
    assert not any("\u20b9" in ln for ln in text)


def test_taxes_inclusive_and_exclusive() -> None:
    invoice = realistic_invoice()
    invoice["totals"] = totals(
        amount="100.00", taxes_inclusive_total="5.00", taxes_exclusive_total="20.00", taxes_total="25.00"
    )
    assert invoice["totals"]["total"] == "120.00"
    block = totals_block(all_lines(render_pdf(invoice)))
    assert block[-2:] == [("Taxes (of which included: $5.00)", "$25.00"), ("Total (USD)", "$120.00")]


def test_names_are_text_not_markup_and_latin_accents_render() -> None:
    invoice = realistic_invoice()
    invoice["customer"]["name"] = "Müller & Söhne <GmbH>"
    invoice["customer"]["billing_address"] = {"line1": "Straße 1", "postal_code": "10115", "city": "Berlin"}
    lines = all_lines(render_pdf(invoice))
    customer = lines[lines.index("BILL TO") + 1 : lines.index("Description")]
    assert customer[:3] == ["Müller & Söhne <GmbH>", "Straße 1", "10115 Berlin"]


def test_an_invoice_without_lines_says_so() -> None:
    invoice = realistic_invoice()
    invoice["lines"], invoice["totals"] = [], totals()
    lines = all_lines(render_pdf(invoice))
    assert "No lines: nothing is due on this invoice." in lines
    assert totals_block(lines)[-1] == ("Total (USD)", "$0.00")


def test_a_period_off_midnight_is_shown_to_the_minute_end_exclusive() -> None:
    invoice = realistic_invoice()
    invoice["lines"][1]["period"] = {"from": "2026-11-15T13:30:00Z", "to": "2026-12-15T13:30:00Z"}
    lines = all_lines(render_pdf(invoice))
    assert "Service period: 2026-11-15 13:30 \u2013 2026-12-15 13:30 UTC" in lines


def test_a_draft_says_so() -> None:
    invoice = realistic_invoice()
    invoice["status"], invoice["number"] = "draft", "DRAFT-01JINV0000"
    invoice.pop("issued_at"), invoice.pop("due_at")
    lines = all_lines(render_pdf(invoice))
    assert "Draft invoice" in lines and "Issue date" not in lines


# ------------------------------------------------------------------------ JSON document and keys


def test_json_document_sorted_without_links(invoice: dict[str, Any]) -> None:
    with_links = {**invoice, "documents": {"pdf": {"url": "https://x", "expires_at": "2026-12-01T00:15:00Z"}}}
    body = render_json(with_links)
    assert body == render_json(invoice)
    parsed = orjson.loads(body)
    assert parsed == invoice and "documents" not in parsed
    assert list(parsed) == sorted(parsed)
    assert list(parsed["lines"][0]) == sorted(parsed["lines"][0])


def test_document_keys(invoice: dict[str, Any]) -> None:
    keys = document_keys(invoice)
    assert keys.json == "invoices/01JCUST0000000000000000007/01JINV00000000000000000042/NWA-2026-000042.json"
    assert keys.pdf == keys.json[:-5] + ".pdf"
    for field, bad in (("number", "2026/42"), ("number", ""), ("id", ".."), ("id", None)):
        broken = copy.deepcopy(invoice)
        broken[field] = bad
        with pytest.raises(ValueError, match=field):
            document_keys(broken)


def test_every_invoiceable_currency_formats_at_its_iso_precision() -> None:
    checked = 0
    for currency in Currency:
        if currency.exponent is None:  # metals, funds, testing: not invoiceable
            continue
        shown = Money(currency.code).amount("1234.5").replace("\u00a0", " ")
        number = re.search(r"\d[\d,]*(\.\d+)?", shown)
        assert number is not None, (currency.code, shown)
        decimals = len(number.group(1) or ".") - 1
        assert decimals == currency.exponent, (currency.code, shown)
        checked += 1
    assert checked > 150


def test_a_minimal_draft_renders() -> None:
    # Only what the renderer cannot do without; everything else in the wire shape is optional to it.
    lines = all_lines(render_pdf({"currency": "EUR", "number": "DRAFT-1", "status": "draft", "lines": []}))
    assert "Draft invoice" in lines and ("Total (EUR)", "€0.00") in totals_block(lines)


def test_a_locale_changes_the_number_format_not_the_precision() -> None:
    german = totals_block(all_lines(render_pdf(realistic_invoice(), locale="de_DE")))
    assert german[0] == ("Subtotal", "112,00 $") and german[-1] == ("Total (USD)", "122,10 $")
    assert Money("KWD", "de_DE").amount("1234.5").replace("\u00a0", " ") == "1.234,500 KWD"

"""The invoice PDF: an A4 document an accounts-payable team can book, from the invoice's wire shape.

Layout (reportlab platypus): the supplier and the invoice's identity (number, issue and due dates,
currency, service period) at the top, the two parties side by side (name, address, tax id), then one
table of lines (each with its service period, quantity, unit price and amount, its detailed lines:
tier rows and minimum-spend commitments, its discounts, credits and taxes), then the totals block
(subtotal, minimum-spend charges, discounts, credits, taxes, total) on the last page. The table's
header repeats on every page and each page's footer reads "Invoice <number> - Page n of N".

Amounts are the wire's decimal strings, shown, never recomputed: the PDF says what the invoice says.
A line's adjustments are its own (`line.discounts`, its credits and taxes totals); the detailed
lines' `discounts` are the same money broken down and are not printed again.
They are formatted with Babel for `locale` (English by default, the language of the labels) at the
currency's ISO 4217 precision (shared.rating.money, not CLDR's digits): JPY 0 decimals, KWD 3.
Unit prices keep their extra decimals (0.00015 USD per token stays 0.00015).

The text font is Bitstream Vera, shipped inside reportlab (nothing else to package for Lambda); a
currency symbol it has no glyph for (₹, ₩, ...) is replaced by the ISO code (INR 1,234.50).

Bytes are deterministic: reportlab's invariant mode (fixed document id) and a creation date taken
from the invoice (issued_at, else created_at), so rendering the same invoice twice writes the same
S3 object.

Service periods are half-open [from, to); a period whose ends fall on UTC midnights is shown by its
days with the last one inclusive (2026-11-01 - 2026-11-30), any other to the minute, end exclusive.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache, partial
from html import escape
from io import BytesIO
from pathlib import Path
from typing import Any

import reportlab
from babel import Locale
from babel.numbers import format_currency, format_decimal, get_currency_symbol
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import KeepTogether, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from shared.rating.money import currency_precision, round_amount

FONT, FONT_BOLD = "MeterlineVera", "MeterlineVera-Bold"
PAGE_WIDTH, PAGE_HEIGHT = A4
MARGIN = 16 * mm
FRAME_PADDING = 6  # platypus frames pad their content by 6 pt on each side
CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN - 2 * FRAME_PADDING
COLUMNS = (0.50, 0.15, 0.17, 0.18)  # description, quantity, unit price, amount (of CONTENT_WIDTH)
DASH = " \u2013 "  # an en dash between the ends of a period
GREY = colors.HexColor("#555555")
RULE = colors.HexColor("#BBBBBB")
SHADE = colors.HexColor("#F0F0F0")

# Where the postal code follows the city on an address line (elsewhere it leads: 75001 Paris).
POSTAL_CODE_LAST = frozenset({"US", "CA", "AU", "GB", "IE", "NZ", "IN", "BR", "JP", "KR", "CN", "SG"})

REASONS = {
    "ratecard_percentage": "Discount",
    "maximum_spend": "Maximum spend cap",
    "ratecard_usage": "Usage discount",
}


@lru_cache(maxsize=1)
def _fonts() -> frozenset[int]:
    """Register the fonts once per process; the code points the regular face has glyphs for."""
    folder = Path(reportlab.__file__).parent / "fonts"
    regular = TTFont(FONT, str(folder / "Vera.ttf"))
    pdfmetrics.registerFont(regular)
    pdfmetrics.registerFont(TTFont(FONT_BOLD, str(folder / "VeraBd.ttf")))
    return frozenset(regular.face.charToGlyph)


class Money:
    """Formats amounts of one currency: Babel's locale pattern at the ISO 4217 precision."""

    def __init__(self, currency: str, locale: str = "en") -> None:
        self.currency = currency
        self.precision = currency_precision(currency)
        self.locale = Locale.parse(locale)
        pattern = self.locale.currency_formats["standard"].pattern.split(";")[0]
        digits = "0." + "0" * self.precision if self.precision else "0"
        pattern = re.sub(r"0\.0+|0(?=[^0#,.]*$)", digits, pattern, count=1)
        symbol = get_currency_symbol(currency, locale=self.locale)
        if any(ord(ch) not in _fonts() for ch in symbol):
            pattern = pattern.replace("¤", "¤¤")  # the ISO code instead of a symbol the font lacks
            symbol = currency
        # CLDR's currency spacing: a symbol made of letters (CHF, KWD) is kept apart from the digits.
        if symbol[-1:].isalpha():
            pattern = re.sub(r"(¤+)(?=[#0])", "\\1\u00a0", pattern)
        if symbol[:1].isalpha():
            pattern = re.sub(r"(?<=[#0])(¤+)", "\u00a0\\1", pattern)
        self.pattern = pattern

    def amount(self, value: str | Decimal | None) -> str:
        """An amount, rounded half away from zero to the currency's precision (the wire's already is)."""
        rounded = round_amount(Decimal(value or 0), self.precision)
        return format_currency(
            rounded, self.currency, format=self.pattern, locale=self.locale, currency_digits=False
        )

    def negative(self, value: str | Decimal | None) -> str:
        """A deduction (discount, credit) shown as a negative amount; zero stays unsigned."""
        return self.amount(-Decimal(value or 0))

    def unit_price(self, value: str | Decimal | None) -> str:
        """A unit price: at least the currency's precision, more digits when the price has them."""
        if value in (None, ""):
            return ""
        return format_currency(
            Decimal(str(value)),
            self.currency,
            format=self.pattern,
            locale=self.locale,
            currency_digits=False,
            decimal_quantization=False,
        )

    def quantity(self, value: str | Decimal | None) -> str:
        if value in (None, ""):
            return ""
        return format_decimal(Decimal(str(value)), locale=self.locale, decimal_quantization=False)


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _date(value: str | None) -> str:
    return _parse_time(value).date().isoformat() if value else ""


def _period(period: Mapping[str, str] | None) -> str:
    """Half-open [from, to) as a reader expects it: whole days inclusive, else minutes, end exclusive."""
    if not period or not period.get("from") or not period.get("to"):
        return ""
    start, end = _parse_time(period["from"]), _parse_time(period["to"])
    if start.time() == end.time() == datetime.min.time() and end > start:
        last = (end - timedelta(days=1)).date()
        return start.date().isoformat() if last == start.date() else f"{start.date()}{DASH}{last}"
    return f"{start:%Y-%m-%d %H:%M}{DASH}{end:%Y-%m-%d %H:%M} UTC"


def _pdf_date(value: str | None) -> str:
    """PDF date string for the document's CreationDate/ModDate (UTC)."""
    moment = _parse_time(value) if value else datetime(2000, 1, 1)
    return f"D:{moment:%Y%m%d%H%M%S}+00'00'"


class _Styles:
    def __init__(self) -> None:
        _fonts()
        base = ParagraphStyle("base", fontName=FONT, fontSize=8.5, leading=11)
        self.base = base
        self.small = ParagraphStyle("small", parent=base, fontSize=7.5, leading=9.5, textColor=GREY)
        self.bold = ParagraphStyle("bold", parent=base, fontName=FONT_BOLD)
        self.label = ParagraphStyle("label", parent=self.small, fontName=FONT_BOLD)
        self.title = ParagraphStyle("title", parent=base, fontName=FONT_BOLD, fontSize=20, leading=24)
        self.supplier = ParagraphStyle("supplier", parent=base, fontName=FONT_BOLD, fontSize=12, leading=15)
        self.right = ParagraphStyle("right", parent=base, alignment=TA_RIGHT)
        self.right_bold = ParagraphStyle("right_bold", parent=self.right, fontName=FONT_BOLD)
        self.detail = ParagraphStyle("detail", parent=self.small, leftIndent=10)
        self.detail_right = ParagraphStyle("detail_right", parent=self.small, alignment=TA_RIGHT)


def _text(value: Any) -> str:
    return escape(str(value)) if value not in (None, "") else ""


def _address(address: Mapping[str, str] | None) -> list[str]:
    if not address:
        return []
    city, state, postal = address.get("city"), address.get("state"), address.get("postal_code")
    if address.get("country") in POSTAL_CODE_LAST:  # San Francisco, CA 94105 / London EC2M 2PF
        region = " ".join(x for x in (", ".join(x for x in (city, state) if x), postal) if x)
    else:  # 10115 Berlin
        region = ", ".join(x for x in (" ".join(x for x in (postal, city) if x), state) if x)
    lines = [address.get("line1"), address.get("line2"), region, address.get("country")]
    if address.get("phone_number"):
        lines.append(f"Tel. {address['phone_number']}")
    return [x for x in lines if x]


def _party(heading: str, party: Mapping[str, Any], address_key: str, st: _Styles) -> list[Paragraph]:
    lines = [f"<font name='{FONT_BOLD}'>{_text(party.get('name'))}</font>"]
    lines += [_text(x) for x in _address(party.get(address_key))]
    if party.get("tax_id"):
        lines.append(f"Tax ID: {_text(party['tax_id'])}")
    if party.get("primary_email"):
        lines.append(_text(party["primary_email"]))
    return [Paragraph(heading.upper(), st.label), Paragraph("<br/>".join(lines), st.base)]


def _header(invoice: Mapping[str, Any], st: _Styles) -> list[Any]:
    status = invoice.get("status", "")
    title = "Draft invoice" if status in ("gathering", "draft") else "Invoice"
    if status == "voided":
        title = "Invoice (void)"
    meta = [
        ("Invoice number", invoice.get("number")),
        ("Issue date", _date(invoice.get("issued_at"))),
        ("Due date", _date(invoice.get("due_at"))),
        ("Currency", invoice.get("currency")),
        ("Service period", _period(invoice.get("period"))),
    ]
    meta_rows = [[Paragraph(k, st.small), Paragraph(_text(v), st.right_bold)] for k, v in meta if v]
    meta_table = Table(meta_rows, colWidths=[28 * mm, 52 * mm])
    meta_table.setStyle(
        TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("TOPPADDING", (0, 0), (-1, -1), 1)])
    )
    supplier = invoice.get("supplier") or {}
    left = [Paragraph(_text(supplier.get("name")), st.supplier), Spacer(1, 4), Paragraph(title, st.title)]
    top = Table([[left, meta_table]], colWidths=[CONTENT_WIDTH - 80 * mm, 80 * mm])
    top.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    customer = invoice.get("customer") or {}
    parties = Table(
        [[_party("From", supplier, "address", st), _party("Bill to", customer, "billing_address", st)]],
        colWidths=[CONTENT_WIDTH / 2] * 2,
    )
    parties.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (0, -1), 0)]))
    return [top, Spacer(1, 8 * mm), parties, Spacer(1, 8 * mm)]


def _line_rows(line: Mapping[str, Any], money: Money, st: _Styles) -> list[list[Any]]:
    """The rows of one line: the line itself, its detailed lines, then its adjustments and total."""
    totals = line.get("totals") or {}
    details: Sequence[Mapping[str, Any]] = line.get("detailed_lines") or []
    regular = [d for d in details if d.get("category", "regular") == "regular"]
    unit_price = line.get("per_unit_amount")
    if unit_price is None and len(regular) == 1:
        unit_price = regular[0].get("unit_price")
    heading = [f"<font name='{FONT_BOLD}'>{_text(line.get('name'))}</font>"]
    sub = []
    if line.get("period"):
        sub.append(f"Service period: {_period(line['period'])}")
    if line.get("late_usage"):
        sub.append("Late usage for this period")
    if line.get("description"):
        sub.append(_text(line["description"]))
    text = heading[0] + "".join(f"<br/><font size='7.5' color='#555555'>{s}</font>" for s in sub)
    rows: list[list[Any]] = [
        [
            Paragraph(text, st.base),
            Paragraph(money.quantity(line.get("quantity")), st.right),
            Paragraph(money.unit_price(unit_price), st.right),
            Paragraph(money.amount(totals.get("amount")), st.right),
        ]
    ]
    # Detailed lines: tier rows when there are several, and every commitment (minimum spend) row.
    shown = [d for d in details if len(regular) > 1 or d.get("category") == "commitment"]
    for d in shown:
        name = _text(d.get("name"))
        if d.get("period") and d["period"] != line.get("period"):
            name += f" ({_period(d['period'])})"
        rows.append(
            [
                Paragraph(name, st.detail),
                Paragraph(money.quantity(d.get("quantity")), st.detail_right),
                Paragraph(money.unit_price(d.get("unit_price")), st.detail_right),
                Paragraph(money.amount(d.get("amount")), st.detail_right),
            ]
        )
    discounts = line.get("discounts") or {}
    adjustments: list[tuple[str, str, str]] = []
    for discount in discounts.get("amount") or []:
        label = REASONS.get(discount.get("reason", ""), str(discount.get("reason", "Discount")))
        if discount.get("percentage") not in (None, ""):
            label += f" ({money.quantity(discount['percentage'])}%)"
        adjustments.append((label, "", money.negative(discount.get("amount"))))
    for usage in discounts.get("usage") or []:
        label = REASONS.get(usage.get("reason", ""), "Usage discount")
        adjustments.append((f"{label}: {money.quantity(usage.get('quantity'))} units free", "", ""))
    if Decimal(totals.get("credits_total") or 0):
        adjustments.append(("Credits applied", "", money.negative(totals["credits_total"])))
    if Decimal(totals.get("taxes_total") or 0):
        adjustments.append(("Tax", "", money.amount(totals["taxes_total"])))
    for label, quantity, amount in adjustments:
        rows.append(
            [
                Paragraph(_text(label), st.detail),
                Paragraph(quantity, st.detail_right),
                "",
                Paragraph(amount, st.detail_right),
            ]
        )
    if Decimal(totals.get("total") or 0) != Decimal(totals.get("amount") or 0):
        rows.append(
            [
                Paragraph("Line total", st.label),
                "",
                "",
                Paragraph(money.amount(totals.get("total")), st.right_bold),
            ]
        )
    return rows


def _lines_table(invoice: Mapping[str, Any], money: Money, st: _Styles) -> Table:
    header = [
        Paragraph("Description", st.label),
        Paragraph("Quantity", st.detail_right),
        Paragraph("Unit price", st.detail_right),
        Paragraph("Amount", st.detail_right),
    ]
    rows: list[list[Any]] = [header]
    style: list[Any] = [
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
        ("LEFTPADDING", (0, 0), (0, -1), 0),
        ("RIGHTPADDING", (-1, 0), (-1, -1), 0),
        ("TOPPADDING", (0, 0), (-1, -1), 2),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
    ]
    for line in invoice.get("lines") or []:
        first = len(rows)
        rows.extend(_line_rows(line, money, st))
        style.append(("LINEBELOW", (0, len(rows) - 1), (-1, len(rows) - 1), 0.3, RULE))
        style.append(("TOPPADDING", (0, first), (-1, first), 5))
    if len(rows) == 1:
        rows.append([Paragraph("No lines: nothing is due on this invoice.", st.small), "", "", ""])
    table = Table(rows, colWidths=[CONTENT_WIDTH * c for c in COLUMNS], repeatRows=1)
    table.setStyle(TableStyle(style))
    return table


def _totals(invoice: Mapping[str, Any], money: Money, st: _Styles) -> KeepTogether:
    t = invoice.get("totals") or {}
    taxes = "Taxes"
    if Decimal(t.get("taxes_inclusive_total") or 0):
        taxes += f" (of which included: {money.amount(t['taxes_inclusive_total'])})"
    rows = [
        ("Subtotal", money.amount(t.get("amount"))),
        ("Charges (minimum spend)", money.amount(t.get("charges_total"))),
        ("Discounts", money.negative(t.get("discounts_total"))),
        ("Credits", money.negative(t.get("credits_total"))),
        (taxes, money.amount(t.get("taxes_total"))),
    ]
    body: list[list[Any]] = [[Paragraph(k, st.base), Paragraph(v, st.right)] for k, v in rows]
    body.append(
        [
            Paragraph(f"Total ({_text(invoice.get('currency'))})", st.bold),
            Paragraph(money.amount(t.get("total")), st.right_bold),
        ]
    )
    table = Table(body, colWidths=[CONTENT_WIDTH * 0.40, CONTENT_WIDTH * 0.18], hAlign="RIGHT")
    table.setStyle(
        TableStyle(
            [
                ("LINEABOVE", (0, -1), (-1, -1), 0.8, colors.black),
                ("BACKGROUND", (0, -1), (-1, -1), SHADE),
                ("RIGHTPADDING", (-1, 0), (-1, -1), 0),
                ("TOPPADDING", (0, 0), (-1, -1), 2),
                ("BOTTOMPADDING", (0, 0), (-1, -1), 2),
            ]
        )
    )
    notes = _payment_note(invoice)
    return KeepTogether(
        [Spacer(1, 6 * mm), table, Spacer(1, 6 * mm), *[Paragraph(n, st.small) for n in notes]]
    )


def _payment_note(invoice: Mapping[str, Any]) -> list[str]:
    workflow = invoice.get("workflow") or {}
    due = _date(invoice.get("due_at"))
    method = workflow.get("collection_method")
    if method == "charge_automatically":
        note = "This invoice is charged to the payment method on file"
        return [note + (f" on or before {due}." if due else ".")]
    if method == "send_invoice" and due:
        return [f"Please pay the total by {due}, quoting invoice number {_text(invoice.get('number'))}."]
    return []


class _NumberedCanvas(Canvas):
    """Defers each page until the page count is known, to print "Page n of N" in every footer."""

    def __init__(self, *args: Any, footer: str, created: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._footer = footer
        self._pages: list[dict[str, Any]] = []
        self.setDateFormatter(lambda *_: created)  # CreationDate/ModDate: the invoice's, not the clock's

    def showPage(self) -> None:
        self._pages.append(dict(self.__dict__))
        self._startPage()  # type: ignore[attr-defined]  # reportlab internal, untyped in the stubs

    def save(self) -> None:
        total = len(self._pages)
        for number, page in enumerate(self._pages, start=1):
            self.__dict__.update(page)
            self.setFont(FONT, 7.5)
            self.setFillColor(GREY)
            self.drawString(MARGIN + FRAME_PADDING, 10 * mm, self._footer)
            self.drawRightString(PAGE_WIDTH - MARGIN - FRAME_PADDING, 10 * mm, f"Page {number} of {total}")
            super().showPage()
        super().save()


def render(invoice: Mapping[str, Any], locale: str = "en") -> bytes:
    """The invoice as PDF bytes (see the module docstring); the same invoice gives the same bytes."""
    st = _Styles()
    money = Money(str(invoice["currency"]), locale)
    number = str(invoice.get("number") or invoice.get("id") or "")
    supplier = (invoice.get("supplier") or {}).get("name") or ""
    customer = (invoice.get("customer") or {}).get("name") or ""
    buffer = BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        leftMargin=MARGIN,
        rightMargin=MARGIN,
        topMargin=MARGIN,
        bottomMargin=MARGIN + 4 * mm,
        title=f"Invoice {number}",
        author=supplier,
        subject=f"Invoice {number} to {customer}",
        creator="Meterline",
        invariant=1,
    )
    story = [*_header(invoice, st), _lines_table(invoice, money, st), _totals(invoice, money, st)]
    footer = f"{supplier} · Invoice {number}" if supplier else f"Invoice {number}"
    created = _pdf_date(invoice.get("issued_at") or invoice.get("created_at"))
    doc.build(story, canvasmaker=partial(_NumberedCanvas, footer=footer, created=created))
    return buffer.getvalue()

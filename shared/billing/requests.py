"""Typed inputs of the billing endpoints, parsed from HTTP bodies and query strings: the only
module that knows the wire names (contract `CreateBillingProfileRequest`, `UpsertBillingProfileRequest`,
`UpsertCustomerBillingDataRequest`, `UpsertAppCustomerDataRequest`).

Every bad field is a 400 naming it. Beyond the schema: durations must be ISO-8601 with whole units
and at most 100 years (the invoice code adds them to dates); an anchored alignment's interval must be
positive; free-text fields are capped (one DynamoDB item per profile); tax codes on a profile's
default tax config are refused (deprecated by the contract: the organisation's default tax code
applies, `PUT /defaults/tax-codes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool

from shared.api.params import Page, page_params
from shared.api.validation import Rfc3339, validate_model
from shared.billing.models import (
    Address,
    Alignment,
    AlignmentType,
    AppData,
    CollectionMethod,
    ExternalInvoicingCustomerData,
    ProfileApps,
    ProrationMode,
    StripeCustomerData,
    Supplier,
    TaxBehavior,
    Workflow,
)
from shared.core.durations import parse_duration
from shared.core.errors import FieldError, InvalidInput
from shared.core.ids import ULID_PATTERN
from shared.core.labels import check_labels

# Free text is capped so a profile stays far below DynamoDB's 400 KB item (the contract sets no bound).
MAX_TEXT = 1024
_REFERENCE = datetime(2000, 1, 1, tzinfo=UTC)
_HORIZON = datetime(2100, 1, 1, tzinfo=UTC)


def _duration(value: str) -> str:
    try:
        delta = parse_duration(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 duration of whole units (e.g. PT1H, P1D, P1M)") from None
    try:
        too_long = _REFERENCE + delta > _HORIZON
    except (OverflowError, ValueError):
        too_long = True
    if too_long:
        raise ValueError("must be at most 100 years")
    return value


def _positive(value: str) -> str:
    if _REFERENCE + parse_duration(value) <= _REFERENCE:
        raise ValueError("must be a positive duration")
    return value


Duration = Annotated[str, AfterValidator(_duration)]
PositiveDuration = Annotated[str, AfterValidator(_duration), AfterValidator(_positive)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=256)]
Labels = Annotated[dict[str, str] | None, AfterValidator(check_labels)]
Ulid = Annotated[str, Field(pattern=ULID_PATTERN.pattern)]
StripeId = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Ref(_Strict):
    id: Ulid


# -- supplier -------------------------------------------------------------------------------------
class _Address(_Strict):
    country: str | None = Field(default=None, min_length=2, max_length=2, pattern=r"^[A-Z]{2}$")
    postal_code: Text | None = None
    state: Text | None = None
    city: Text | None = None
    line1: Text | None = None
    line2: Text | None = None
    phone_number: Text | None = None


class _Addresses(_Strict):
    billing_address: _Address


class _TaxId(_Strict):
    code: str | None = Field(default=None, min_length=1, max_length=32)


class _Supplier(_Strict):
    id: str | None = None  # readOnly: ignored
    key: str | None = Field(default=None, min_length=1, max_length=256)
    name: Text | None = None
    tax_id: _TaxId | None = None
    addresses: _Addresses | None = None


# -- workflow -------------------------------------------------------------------------------------
class _RecurringPeriod(_Strict):
    anchor: Rfc3339
    interval: PositiveDuration


class _SubscriptionAlignment(_Strict):
    type: Literal["subscription"]


class _AnchoredAlignment(_Strict):
    type: Literal["anchored"]
    recurring_period: _RecurringPeriod


class _Collection(_Strict):
    alignment: _SubscriptionAlignment | _AnchoredAlignment | None = Field(default=None, discriminator="type")
    interval: Duration = "PT1H"


class _Invoicing(_Strict):
    auto_advance: StrictBool = True
    draft_period: Duration = "P0D"
    progressive_billing: StrictBool = True
    subscription_end_proration_mode: ProrationMode = ProrationMode.BILL_ACTUAL_PERIOD


class _ChargeAutomatically(_Strict):
    collection_method: Literal["charge_automatically"]


class _SendInvoice(_Strict):
    collection_method: Literal["send_invoice"]
    due_after: Duration = "P30D"


class _StripeCode(_Strict):
    code: str = Field(pattern=r"^txcd_\d{8}$")


class _ExternalCode(_Strict):
    code: str = Field(max_length=64)


class _DefaultTaxConfig(_Strict):
    behavior: TaxBehavior | None = None
    stripe: _StripeCode | None = None
    external_invoicing: _ExternalCode | None = None
    tax_code_id: Ulid | None = None
    tax_code: _Ref | None = None


class _Tax(_Strict):
    enabled: StrictBool = True
    enforced: StrictBool = False
    default_tax_config: _DefaultTaxConfig | None = None


class _Workflow(_Strict):
    collection: _Collection | None = None
    invoicing: _Invoicing | None = None
    payment: _ChargeAutomatically | _SendInvoice | None = Field(
        default=None, discriminator="collection_method"
    )
    tax: _Tax | None = None


class _Apps(_Strict):
    tax: _Ref
    invoicing: _Ref
    payment: _Ref


class UpsertProfileBody(_Strict):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()  # no field takes null

    name: Name
    description: str | None = Field(default=None, max_length=1024)
    labels: Labels = None
    supplier: _Supplier
    workflow: _Workflow
    default: StrictBool


class CreateProfileBody(UpsertProfileBody):
    apps: _Apps


# -- customer billing -----------------------------------------------------------------------------
class _StripeData(_Strict):
    customer_id: StripeId | None = None
    default_payment_method_id: StripeId | None = None
    labels: Labels = None


class _ExternalData(_Strict):
    labels: Labels = None


class AppDataBody(_Strict):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    stripe: _StripeData | None = None
    external_invoicing: _ExternalData | None = None


class CustomerBillingBody(_Strict):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    billing_profile: _Ref | None = None
    app_data: AppDataBody | None = None


class _PortalOptions(_Strict):
    configuration_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    locale: Annotated[str, Field(min_length=1, max_length=35)] | None = None
    return_url: Annotated[str, Field(min_length=1, max_length=2048)] | None = None


class PortalSessionBody(_Strict):
    NULLABLE: ClassVar[frozenset[str]] = frozenset()

    stripe_options: _PortalOptions


# -- typed inputs ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProfileInput:
    name: str
    description: str | None
    labels: dict[str, str] | None
    supplier: Supplier
    workflow: Workflow
    default: bool
    apps: ProfileApps | None  # create only: apps are immutable


@dataclass(frozen=True)
class CustomerBillingInput:
    profile_id: str | None  # None: follow the default profile
    app_data: AppData | None  # None: keep the stored app data (it has its own endpoint)


def _supplier(s: _Supplier) -> Supplier:
    address = None
    if s.addresses is not None:
        a = s.addresses.billing_address
        address = Address(a.country, a.postal_code, a.state, a.city, a.line1, a.line2, a.phone_number)
    return Supplier(name=s.name, key=s.key, tax_id=s.tax_id.code if s.tax_id else None, address=address)


_TAX_CODE_FIELDS = ("stripe", "external_invoicing", "tax_code_id", "tax_code")


def _workflow(w: _Workflow) -> Workflow:
    collection = w.collection or _Collection()
    invoicing = w.invoicing or _Invoicing()
    tax = w.tax or _Tax()
    config = tax.default_tax_config
    if config is not None:
        given = [name for name in _TAX_CODE_FIELDS if getattr(config, name) is not None]
        if given:
            reason = (
                "a tax code on a billing profile is deprecated; the organisation's default tax code "
                "applies (PUT /defaults/tax-codes)"
            )
            raise InvalidInput(
                f"Invalid [workflow.tax.default_tax_config.{given[0]}]: {reason}",
                tuple(FieldError(f"workflow.tax.default_tax_config.{n}", reason) for n in given),
            )
    alignment = Alignment()
    if isinstance(collection.alignment, _AnchoredAlignment):
        period = collection.alignment.recurring_period
        alignment = Alignment(AlignmentType.ANCHORED, period.anchor, period.interval)
    payment = w.payment
    return Workflow(
        alignment=alignment,
        collection_interval=collection.interval,
        auto_advance=invoicing.auto_advance,
        draft_period=invoicing.draft_period,
        progressive_billing=invoicing.progressive_billing,
        proration_mode=invoicing.subscription_end_proration_mode,
        collection_method=CollectionMethod(payment.collection_method)
        if payment
        else CollectionMethod.CHARGE_AUTOMATICALLY,
        due_after=payment.due_after if isinstance(payment, _SendInvoice) else "P30D",
        tax_enabled=tax.enabled,
        tax_enforced=tax.enforced,
        tax_behavior=config.behavior if config else None,
    )


def _profile(req: UpsertProfileBody, apps: ProfileApps | None) -> ProfileInput:
    return ProfileInput(
        name=req.name,
        description=req.description,
        labels=req.labels,
        supplier=_supplier(req.supplier),
        workflow=_workflow(req.workflow),
        default=req.default,
        apps=apps,
    )


def create_profile(body: Any) -> ProfileInput:
    req = validate_model(CreateProfileBody, body)
    return _profile(req, ProfileApps(req.apps.tax.id, req.apps.invoicing.id, req.apps.payment.id))


def update_profile(body: Any) -> ProfileInput:
    return _profile(validate_model(UpsertProfileBody, body), None)


def _app_data(req: AppDataBody) -> AppData:
    stripe = None
    if req.stripe is not None:
        s = req.stripe
        stripe = StripeCustomerData(s.customer_id, s.default_payment_method_id, s.labels)
    external = (
        ExternalInvoicingCustomerData(req.external_invoicing.labels) if req.external_invoicing else None
    )
    return AppData(stripe, external)


def app_data(body: Any) -> AppData:
    return _app_data(validate_model(AppDataBody, body))


def customer_billing(body: Any) -> CustomerBillingInput:
    req = validate_model(CustomerBillingBody, body)
    return CustomerBillingInput(
        profile_id=req.billing_profile.id if req.billing_profile else None,
        app_data=_app_data(req.app_data) if req.app_data is not None else None,
    )


def page(params: dict[str, str]) -> Page:
    return page_params(params)


@dataclass(frozen=True)
class PortalOptions:
    configuration_id: str | None
    locale: str | None
    return_url: str | None


def portal_session(body: Any) -> PortalOptions:
    o = validate_model(PortalSessionBody, body).stripe_options
    return PortalOptions(o.configuration_id, o.locale, o.return_url)

"""The engine's catalog rules (engine-rules §2.6; codes from openmeter `productcatalog/errors.go`).

Two kinds, as in the engine: *critical* problems reject the write (InvalidError naming the field,
nothing stored): an unknown or archived feature, a rate card key that differs from its feature's key,
an unknown tax code, a metered entitlement on a feature without a meter. *Warnings* are stored with
the draft as `validation_errors` and block publishing; `plan_issues` / `addon_issues` return them.
"""

from __future__ import annotations

from collections.abc import Iterable

from shared.catalog.cadence import PLAN_CADENCES, Cadence, aligned
from shared.catalog.errors import FieldIssue, InvalidError
from shared.catalog.models import (
    Catalog,
    EntitlementType,
    InstanceType,
    Phase,
    PriceType,
    RateCard,
    ValidationIssue,
)

# code -> message (the engine's wording where it has one)
MESSAGES = {
    "plan_phase_duplicated_key": "plan phase key must be unique within the plan",
    "plan_has_non_last_phase_with_no_duration": (
        "duration must be set for plan phase if it is not the last one"
    ),
    "plan_has_last_phase_with_duration": "duration must not be set for the last plan phase",
    "plan_phase_duration_less_then_an_hour": "duration must be at least 1 hour",
    "plan_phase_has_no_rate_cards": "plan phase must have at least one rate card",
    "rate_card_duplicated_key": "duplicated key",
    "billing_cadence_invalid_value": "billing cadence must be positive and 1 hour long duration at least",
    "rate_card_billing_cadence_unaligned": "ratecards with prices must have compatible billing cadence",
    "entitlement_template_with_no_feature": "entitlement template requires feature to be associated with",
    "usage_based_price_with_no_feature": "usage-based price requires a feature",
    "usage_based_price_with_feature_and_no_meter": "usage-based price requires a feature with a meter",
    "entitlement_template_usage_period_less_then_an_hour": "usage period must be at least 1 hour",
    "usage_discount_with_flat_price": "usage discount is not supported for flat price",
    "usage_discount_negative_quantity": "usage must be greater than 0",
    "addon_has_no_rate_cards": "add-on must have at least one rate card",
    "addon_invalid_ratecard_price_for_multi_instance": (
        "only free or flat price ratecards are allowed for add-on with multiple instance type"
    ),
}
PLAN_CADENCE_INVALID = f"billing cadence must be one of the following: {', '.join(PLAN_CADENCES)}"


def issue(code: str, field: str, **attributes: object) -> ValidationIssue:
    return ValidationIssue(code, MESSAGES[code], field, dict(attributes) or None)


# -- critical: reject the write -----------------------------------------------------------------
def check_plan_cadence(cadence: str, field: str = "billing_cadence") -> None:
    """`plan_billing_cadence_invalid` is critical in the engine: only the listed cadences are sold."""
    if not any(Cadence.parse(cadence) == Cadence.parse(ok) for ok in PLAN_CADENCES):
        reason = f"plan_billing_cadence_invalid: {PLAN_CADENCE_INVALID}"
        choices = {"choices": list(PLAN_CADENCES)}
        raise InvalidError(f"Invalid [{field}]: {reason}", [FieldIssue(field, reason, "enum", extra=choices)])


def check_references(cards: Iterable[tuple[str, RateCard]], catalog: Catalog) -> None:
    """Every feature and tax code a rate card names must exist; every problem is named at once."""
    problems: list[FieldIssue] = []
    for path, rc in cards:
        if rc.feature_id is not None:
            if rc.feature_id not in catalog.feature_keys:
                problems.append(FieldIssue(f"{path}.feature.id", f"feature [{rc.feature_id}] not found"))
            else:
                if rc.key != catalog.feature_keys[rc.feature_id]:
                    # rate_card_key_feature_key_mismatch (critical in the engine)
                    problems.append(
                        FieldIssue(
                            f"{path}.key",
                            "rate_card_key_feature_key_mismatch: rate card key must match feature key",
                        )
                    )
                ent = rc.entitlement
                metered = ent is not None and ent.type is EntitlementType.METERED
                if metered and catalog.feature_meters.get(rc.feature_id) is None:
                    problems.append(
                        FieldIssue(
                            f"{path}.entitlement.type",
                            "a metered entitlement needs a feature with a meter",
                        )
                    )
        if rc.tax_config is not None and rc.tax_config.code_id not in catalog.tax_codes:
            problems.append(
                FieldIssue(f"{path}.tax_config.code.id", f"tax code [{rc.tax_config.code_id}] not found")
            )
    if problems:
        raise InvalidError(f"Invalid [{problems[0].field}]: {problems[0].reason}", problems)


# -- warnings: stored, block publishing ---------------------------------------------------------
def rate_card_issues(
    path: str, rc: RateCard, catalog: Catalog, plan_cadence: str | None
) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    if rc.billing_cadence is not None:
        cadence = Cadence.parse(rc.billing_cadence)
        if not cadence.at_least_an_hour():
            out.append(issue("billing_cadence_invalid_value", f"{path}.billing_cadence"))
        elif (
            plan_cadence is not None
            and rc.price.type is not PriceType.FREE
            and not aligned(rc.billing_cadence, plan_cadence)
        ):
            out.append(
                issue(
                    "rate_card_billing_cadence_unaligned",
                    f"{path}.billing_cadence",
                    billing_cadence=rc.billing_cadence,
                    plan_billing_cadence=plan_cadence,
                )
            )
    if rc.entitlement is not None and rc.feature_id is None:
        out.append(issue("entitlement_template_with_no_feature", f"{path}.entitlement"))
    if rc.price.usage_based:
        if rc.feature_id is None:
            out.append(issue("usage_based_price_with_no_feature", f"{path}.feature"))
        elif catalog.feature_meters.get(rc.feature_id) is None:
            out.append(issue("usage_based_price_with_feature_and_no_meter", f"{path}.feature.id"))
    ent = rc.entitlement
    period = ent.usage_period if ent is not None and ent.type is EntitlementType.METERED else None
    if period is not None and not Cadence.parse(period).at_least_an_hour():
        out.append(
            issue("entitlement_template_usage_period_less_then_an_hour", f"{path}.entitlement.usage_period")
        )
    if rc.discounts is not None and rc.discounts.usage is not None:
        if not rc.price.usage_based:
            out.append(issue("usage_discount_with_flat_price", f"{path}.discounts.usage"))
        elif rc.discounts.usage <= 0:
            out.append(issue("usage_discount_negative_quantity", f"{path}.discounts.usage"))
    return out


def _duplicates(keys: list[str]) -> list[int]:
    seen: set[str] = set()
    dup = []
    for i, key in enumerate(keys):
        if key in seen:
            dup.append(i)
        seen.add(key)
    return dup


def plan_issues(phases: tuple[Phase, ...], billing_cadence: str, catalog: Catalog) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    for i in _duplicates([p.key for p in phases]):
        out.append(issue("plan_phase_duplicated_key", f"phases[{i}].key", key=phases[i].key))
    last = len(phases) - 1
    for i, phase in enumerate(phases):
        where = f"phases[{i}]"
        if phase.duration is None and i != last:
            out.append(issue("plan_has_non_last_phase_with_no_duration", f"{where}.duration"))
        if phase.duration is not None and i == last:
            out.append(issue("plan_has_last_phase_with_duration", f"{where}.duration"))
        elif phase.duration is not None and not Cadence.parse(phase.duration).at_least_an_hour():
            out.append(issue("plan_phase_duration_less_then_an_hour", f"{where}.duration"))
        if not phase.rate_cards:
            out.append(issue("plan_phase_has_no_rate_cards", f"{where}.rate_cards"))
        for j in _duplicates([rc.key for rc in phase.rate_cards]):
            out.append(
                issue("rate_card_duplicated_key", f"{where}.rate_cards[{j}].key", key=phase.rate_cards[j].key)
            )
        for j, rc in enumerate(phase.rate_cards):
            out.extend(rate_card_issues(f"{where}.rate_cards[{j}]", rc, catalog, billing_cadence))
    return out


def addon_issues(
    cards: tuple[RateCard, ...], instance_type: InstanceType, catalog: Catalog
) -> list[ValidationIssue]:
    out: list[ValidationIssue] = []
    if not cards:
        out.append(issue("addon_has_no_rate_cards", "rate_cards"))
    for j in _duplicates([rc.key for rc in cards]):
        out.append(issue("rate_card_duplicated_key", f"rate_cards[{j}].key", key=cards[j].key))
    for j, rc in enumerate(cards):
        path = f"rate_cards[{j}]"
        if instance_type is InstanceType.MULTIPLE and rc.price.type not in (PriceType.FREE, PriceType.FLAT):
            out.append(issue("addon_invalid_ratecard_price_for_multi_instance", f"{path}.price"))
        out.extend(rate_card_issues(path, rc, catalog, None))
    return out

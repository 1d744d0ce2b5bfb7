"""The product catalog (contract tags `OpenMeter Product Catalog`, `OpenMeter Tax`, `OpenMeter Defaults`):
plans, their add-ons, add-ons, tax codes and the default tax codes. Parse, call, render."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from functions.api.app import body, json_response, no_content, query_params
from shared.api.params import Page, StringFilter, nested, page_params, sort_items, string_filters, ulid_filter
from shared.api.problem import BadRequest
from shared.bootstrap import addons, plans, tax_codes
from shared.catalog import requests, views
from shared.catalog.service import AddonService, PlanService

router = APIGatewayRouter()


# -- list parameters ------------------------------------------------------------------------------
EXACT_OPS = ("eq", "oeq", "neq")
_SORTS: dict[str, Any] = {
    "id": lambda x: x.id,
    "key": lambda x: (x.key, x.version),
    "version": lambda x: (x.version, x.id),
    "name": lambda x: (x.name, x.id),
    "created_at": lambda x: (x.created_at, x.id),
    "updated_at": lambda x: (x.updated_at, x.id),
}
# The contract's sort attributes of each list.
PLAN_SORTS = {k: _SORTS[k] for k in ("id", "key", "version", "created_at", "updated_at")}
ADDON_SORTS = {k: _SORTS[k] for k in ("id", "key", "name", "created_at", "updated_at")}


def _filters(params: dict[str, str], with_id: bool) -> list[StringFilter]:
    """`filter[key|name]` (string operators), `filter[status|currency]` (eq / oeq / neq), `filter[id]`."""
    spec = nested(params, "filter")
    out: list[StringFilter] = []
    if with_id and "id" in spec:
        out.append(ulid_filter("id", spec.pop("id")))
    allowed = ("key", "name", "status", "currency")
    rest = {k: v for k, v in params.items() if not (with_id and k.startswith("filter[id]"))}
    for f in string_filters(rest, allowed):
        if f.field in ("status", "currency") and f.op not in EXACT_OPS:
            raise BadRequest.field(
                f"filter[{f.field}][{f.op}]", "use one of eq, oeq, neq", "invalid", "query"
            )
        out.append(f)
    return out


def _list_versioned(svc: PlanService | AddonService, render: Any, with_id: bool) -> Response:
    params = query_params()
    page = page_params(params)
    filters = _filters(params, with_id)
    now = svc.now()
    items = [
        x
        for x in svc.versions()
        if all(
            f.matches(x.status(now).value if f.field == "status" else getattr(x, f.field)) for f in filters
        )
    ]
    allowed = ADDON_SORTS if with_id else PLAN_SORTS
    items = sort_items(items, params.get("sort"), allowed, "created_at")
    return json_response(200, page.response([render(x, now) for x in page.slice(items)], len(items)))


def _page(items: list[Any], page: Page) -> dict[str, Any]:
    return page.response(page.slice(items), len(items))


# -- plans ----------------------------------------------------------------------------------------
@router.post("/plans")
def create_plan() -> Response:
    svc = plans()
    return json_response(201, views.plan(svc.create(requests.create_plan(body())), svc.now()))


@router.get("/plans")
def list_plans() -> Response:
    return _list_versioned(plans(), views.plan, with_id=False)


@router.get("/plans/<plan_id>")
def get_plan(plan_id: str) -> Response:
    svc = plans()
    return json_response(200, views.plan(svc.get(requests.path_id(plan_id, "planId")), svc.now()))


@router.put("/plans/<plan_id>")
def update_plan(plan_id: str) -> Response:
    svc = plans()
    pid = requests.path_id(plan_id, "planId")
    return json_response(200, views.plan(svc.update(pid, requests.update_plan(body())), svc.now()))


@router.delete("/plans/<plan_id>")
def delete_plan(plan_id: str) -> Response:
    plans().delete(requests.path_id(plan_id, "planId"))
    return no_content()


@router.post("/plans/<plan_id>/publish")
def publish_plan(plan_id: str) -> Response:
    svc = plans()
    return json_response(200, views.plan(svc.publish(requests.path_id(plan_id, "planId")), svc.now()))


@router.post("/plans/<plan_id>/archive")
def archive_plan(plan_id: str) -> Response:
    svc = plans()
    return json_response(200, views.plan(svc.archive(requests.path_id(plan_id, "planId")), svc.now()))


# -- the add-ons a plan offers --------------------------------------------------------------------
@router.get("/plans/<plan_id>/addons")
def list_plan_addons(plan_id: str) -> Response:
    page = page_params(query_params())
    links = plans().links(requests.path_id(plan_id, "planId"))
    return json_response(200, _page([views.plan_addon(x) for x in links], page))


@router.post("/plans/<plan_id>/addons")
def create_plan_addon(plan_id: str) -> Response:
    pid = requests.path_id(plan_id, "planId")
    return json_response(201, views.plan_addon(plans().add_link(pid, requests.create_plan_addon(body()))))


@router.get("/plans/<plan_id>/addons/<link_id>")
def get_plan_addon(plan_id: str, link_id: str) -> Response:
    pid, lid = requests.path_id(plan_id, "planId"), requests.path_id(link_id, "planAddonId")
    return json_response(200, views.plan_addon(plans().link(pid, lid)))


@router.put("/plans/<plan_id>/addons/<link_id>")
def update_plan_addon(plan_id: str, link_id: str) -> Response:
    pid, lid = requests.path_id(plan_id, "planId"), requests.path_id(link_id, "planAddonId")
    inp = requests.update_plan_addon(body())
    return json_response(200, views.plan_addon(plans().update_link(pid, lid, inp)))


@router.delete("/plans/<plan_id>/addons/<link_id>")
def delete_plan_addon(plan_id: str, link_id: str) -> Response:
    pid, lid = requests.path_id(plan_id, "planId"), requests.path_id(link_id, "planAddonId")
    plans().remove_link(pid, lid)
    return no_content()


# -- add-ons --------------------------------------------------------------------------------------
@router.post("/addons")
def create_addon() -> Response:
    svc = addons()
    return json_response(201, views.addon(svc.create(requests.create_addon(body())), svc.now()))


@router.get("/addons")
def list_addons() -> Response:
    return _list_versioned(addons(), views.addon, with_id=True)


@router.get("/addons/<addon_id>")
def get_addon(addon_id: str) -> Response:
    svc = addons()
    return json_response(200, views.addon(svc.get(requests.path_id(addon_id, "addonId")), svc.now()))


@router.put("/addons/<addon_id>")
def update_addon(addon_id: str) -> Response:
    svc = addons()
    aid = requests.path_id(addon_id, "addonId")
    return json_response(200, views.addon(svc.update(aid, requests.update_addon(body())), svc.now()))


@router.delete("/addons/<addon_id>")
def delete_addon(addon_id: str) -> Response:
    addons().delete(requests.path_id(addon_id, "addonId"))
    return no_content()


@router.post("/addons/<addon_id>/publish")
def publish_addon(addon_id: str) -> Response:
    svc = addons()
    return json_response(200, views.addon(svc.publish(requests.path_id(addon_id, "addonId")), svc.now()))


@router.post("/addons/<addon_id>/archive")
def archive_addon(addon_id: str) -> Response:
    svc = addons()
    return json_response(200, views.addon(svc.archive(requests.path_id(addon_id, "addonId")), svc.now()))


# -- tax codes ------------------------------------------------------------------------------------
def _include_deleted(params: dict[str, str]) -> bool:
    value = params.get("include_deleted", "false").lower()
    if value not in ("true", "false"):
        raise BadRequest.field("include_deleted", "must be true or false", "is_boolean", "query")
    return value == "true"


@router.post("/tax-codes")
def create_tax_code() -> Response:
    return json_response(201, views.tax_code(tax_codes().create(requests.create_tax_code(body()))))


@router.get("/tax-codes")
def list_tax_codes() -> Response:
    params = query_params()
    page = page_params({k: v for k, v in params.items() if k != "include_deleted"})
    codes = tax_codes().list(_include_deleted(params))
    return json_response(200, _page([views.tax_code(c) for c in codes], page))


@router.get("/tax-codes/<tax_id>")
def get_tax_code(tax_id: str) -> Response:
    return json_response(200, views.tax_code(tax_codes().get(requests.path_id(tax_id, "taxCodeId"))))


@router.put("/tax-codes/<tax_id>")
def update_tax_code(tax_id: str) -> Response:
    tid = requests.path_id(tax_id, "taxCodeId")
    return json_response(200, views.tax_code(tax_codes().update(tid, requests.update_tax_code(body()))))


@router.delete("/tax-codes/<tax_id>")
def delete_tax_code(tax_id: str) -> Response:
    tax_codes().delete(requests.path_id(tax_id, "taxCodeId"))
    return no_content()


@router.get("/defaults/tax-codes")
def get_default_tax_codes() -> Response:
    return json_response(200, views.default_tax_codes(tax_codes().defaults()))


@router.put("/defaults/tax-codes")
def update_default_tax_codes() -> Response:
    inp = requests.update_default_tax_codes(body())
    return json_response(200, views.default_tax_codes(tax_codes().set_defaults(inp)))

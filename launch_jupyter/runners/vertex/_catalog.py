"""Compute Engine component prices read from Google's Cloud Billing Catalog API.

Vertex AI custom training is priced from Compute Engine's: this module reads the on-demand and spot
prices of the components (vCPU cores and RAM of the predefined machine families, GPUs) for some
regions from the public Compute Engine SKUs, with the real ``google-cloud-billing`` SDK. Deriving
Vertex AI prices from them is the price table's business, not this module's.

The SKU descriptions matched here are the public catalog's (``"N1 Predefined Instance Core running
in Americas"``, ``"Spot Preemptible Nvidia Tesla T4 GPU running in Americas"``); every rule is a
comment next to its code. The API key, when given, never appears in a message or a log line.
"""

from __future__ import annotations

import datetime as _dt
import importlib
import logging
import re
from collections.abc import Sequence
from typing import Any

from ..._extras import MissingExtra
from ...core.errors import LaunchError

log = logging.getLogger(__name__)

SERVICE = "services/6F81-5844-456A"  # Compute Engine in the catalog (ListServices)
# The catalog-api how-to: "Results are paginated, and are limited to 5000 SKUs per page".
PAGE_SIZE = 5000
FAMILIES = ("n1", "e2", "n2", "a2", "g2")
# The GPU's name in the catalog's descriptions -> Vertex AI's accelerator_type.
ACCELERATORS = {
    "Tesla T4": "NVIDIA_TESLA_T4",
    "Tesla V100": "NVIDIA_TESLA_V100",
    "Tesla P100": "NVIDIA_TESLA_P100",
    "Tesla P4": "NVIDIA_TESLA_P4",
    "Tesla K80": "NVIDIA_TESLA_K80",
    "Tesla A100": "NVIDIA_TESLA_A100",
    "Tesla A100 80GB": "NVIDIA_A100_80GB",
    "L4": "NVIDIA_L4",
}
# The unit each kind must be priced in (PricingExpression.usage_unit): cores and GPUs per hour, RAM
# per gibibyte-hour. unit_price is the price per usage_unit; display_quantity "does not affect the
# pricing formula and is for display purposes only" (cloud_catalog.proto), so it is not used.
UNITS = {"cores": "h", "ram": "GiBy.h", "accelerators": "h"}

# A predefined machine's core or RAM: "N1 Predefined Instance Core running in Americas",
# "E2 Instance Ram running in Netherlands". Anchored at both words, so what inserts a word there
# is not ours: "N2 Custom Instance Core", "N2 Custom Extended Instance Ram", "N1 Sole Tenancy
# Instance Core", "Sole Tenancy Instance Core Premium", "N2D AMD Instance Core", "Memory-optimized
# Instance Core", the "Commitment v1: ..." SKUs.
_MACHINE = re.compile(r"(?P<family>[A-Z][0-9]+) (?:Predefined )?Instance (?P<part>Core|Ram) running in .+")
# A GPU: "Nvidia Tesla T4 GPU running in Americas", "Nvidia Tesla A100 80GB GPU running in ...",
# "Nvidia L4 GPU running in ...". The name must be one of ACCELERATORS exactly, so "Nvidia Tesla
# T4 Virtual Workstation GPU" (a licence on top of the GPU) is not a T4, and "GPU running in" must
# follow it, so "Nvidia Tesla A100 80GB GPU attached to DWS Defined Duration VMs running in ..."
# (Dynamic Workload Scheduler) is not the on-demand price. "Nvidia" in any case: both spellings
# appear in published descriptions.
_GPU = re.compile(r"(?i:Nvidia) (?P<name>.+?) GPU running in .+")
# Spot VMs are billed on the SKUs of usage_type "Preemptible", whose descriptions start with
# "Spot Preemptible " (before Spot VMs, "Preemptible "); on-demand ones are "OnDemand" and start
# with neither. Any other usage type (Commit1Yr, Commit3Yr, ...) is a commitment, not ours.
_SPOT_PREFIXES = ("Spot Preemptible ", "Preemptible ")
_USAGE = {"OnDemand": "on_demand", "Preemptible": "spot"}


def fetch_components(
    regions: Sequence[str],
    *,
    api_key: str | None = None,
    endpoint: str | None = None,
    credentials: Any = None,
    timeout: float = 60.0,
    client: Any = None,
) -> dict:
    """Component prices (USD per hour, RAM per GiB-hour) for ``regions`` from the Cloud Billing
    Catalog API: ``{region: {"cores"|"ram": {family: {"on_demand", "spot"}}, "accelerators":
    {accelerator_type: {...}}}, "_meta": {...}}``, None where the catalog has no such SKU and ``{}``
    for a region with none at all (named in ``_meta["missing_regions"]``).

    ``_meta``: ``fetched_at`` (ISO 8601, UTC), ``service``, ``skus_read``, ``pages``,
    ``missing_regions``, ``skipped`` (component SKUs not priced in their kind's unit:
    ``{sku, description, usage_unit, reason}``) and ``ambiguous`` (a second SKU for a slot already
    filled: ``{region, slot, kept, dropped}``; the first is kept).

    Authenticates with ``api_key`` or ``credentials`` (else application default credentials);
    ``endpoint`` replaces cloudbilling.googleapis.com; ``timeout`` bounds each page's call
    (seconds); ``client`` is a ready ``billing_v1.CloudCatalogClient`` to use instead.
    """
    if isinstance(regions, str):
        regions = [regions]
    wanted = list(dict.fromkeys(regions))
    secret = api_key or ""
    if api_key and credentials is not None:
        raise LaunchError("the Cloud Billing Catalog API takes an API key or credentials, not both")
    owned = client is None
    try:
        if owned:
            client = _client(api_key, endpoint, credentials)
        try:
            return _read(client, wanted, timeout)
        finally:
            if owned:
                client.transport.close()
    except LaunchError:
        raise
    except Exception as err:  # the SDK's and google-auth's errors, turned into one line each
        message = _error(err, timeout, secret)
        if message is None:
            raise  # not an API or credentials error: a bug, keep its traceback
        raise message from None


def _client(api_key: str | None, endpoint: str | None, credentials: Any) -> Any:
    try:
        # Lazy: the SDK (and grpc under it) is heavy; only a prices refresh needs it.
        billing_v1 = importlib.import_module("google.cloud.billing_v1")
        from google.api_core.client_options import ClientOptions
    except ImportError:
        raise MissingExtra("vertex", "launch-jupyter prices refresh") from None
    options = ClientOptions(api_endpoint=endpoint, api_key=api_key)
    return billing_v1.CloudCatalogClient(client_options=options, credentials=credentials)


def _read(client: Any, regions: list[str], timeout: float) -> dict:
    from google.api_core import exceptions, retry

    # UNAVAILABLE is worth another try within the same deadline (a refresh reads tens of
    # thousands of SKUs over several pages; one dropped connection should not lose them all).
    again = retry.Retry(
        predicate=retry.if_exception_type(exceptions.ServiceUnavailable),
        initial=0.1,
        maximum=2.0,
        timeout=timeout,
    )
    request = {"parent": SERVICE, "currency_code": "USD", "page_size": PAGE_SIZE}
    pager = client.list_skus(request=request, timeout=timeout, retry=again)
    reader = _Reader(regions)
    pages = 0
    for page in pager.pages:  # the pager sends page_token = next_page_token until it is empty
        pages += 1
        log.debug("Cloud Billing Catalog: page %d, %d SKUs", pages, len(page.skus))
        for sku in page.skus:
            reader.add(sku)
    return reader.result(pages)


class _Reader:
    """Sorts SKUs into the slots of the requested regions and remembers what it passed over."""

    def __init__(self, regions: list[str]) -> None:
        self.regions = regions
        self.slots: dict[str, dict[tuple[str, str, str], tuple[float, Any]]] = {r: {} for r in regions}
        self.skipped: list[dict] = []
        self.ambiguous: list[dict] = []
        self.read = 0

    def add(self, sku: Any) -> None:
        self.read += 1
        # A SKU counts for region R only if R is one of its service_regions ("List of service
        # regions this SKU is offered at").
        regions = [r for r in self.regions if r in sku.service_regions]
        if not regions:
            return
        slot = _slot(sku)
        if slot is None:
            return
        price, why = _hourly_price(sku, UNITS[slot[0]])
        if price is None:
            self.skipped.append(
                {
                    "sku": sku.name,
                    "description": sku.description,
                    "usage_unit": _latest(sku).pricing_expression.usage_unit if sku.pricing_info else "",
                    "reason": why,
                }
            )
            return
        for region in regions:
            kept = self.slots[region].get(slot)
            if kept is None:
                self.slots[region][slot] = (price, sku)
                continue
            # Two SKUs for one slot means these rules misread the catalog: keep the first, say so.
            self.ambiguous.append(
                {
                    "region": region,
                    "slot": ".".join(slot),
                    "kept": {"sku": kept[1].name, "description": kept[1].description, "price": kept[0]},
                    "dropped": {"sku": sku.name, "description": sku.description, "price": price},
                }
            )

    def result(self, pages: int) -> dict:
        out: dict[str, Any] = {}
        missing = []
        for region in self.regions:
            found = self.slots[region]
            if not found:
                out[region] = {}
                missing.append(region)
                continue
            components = _empty()
            for (kind, name, usage), (price, _) in found.items():
                components[kind][name][usage] = price
            out[region] = components
        out["_meta"] = {
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "service": SERVICE,
            "skus_read": self.read,
            "pages": pages,
            "missing_regions": missing,
            "skipped": self.skipped,
            "ambiguous": self.ambiguous,
        }
        return out


def _empty() -> dict:
    def pair() -> dict:
        return {"on_demand": None, "spot": None}

    return {
        "cores": {f: pair() for f in FAMILIES},
        "ram": {f: pair() for f in FAMILIES},
        "accelerators": {a: pair() for a in ACCELERATORS.values()},
    }


def _slot(sku: Any) -> tuple[str, str, str] | None:
    """(kind, family or accelerator_type, "on_demand" | "spot") of a component SKU, else None."""
    category = sku.category
    # Licences (premium images: "Licensing Fee for Windows Server ..."), storage and network are
    # other resource families; cores, RAM and GPUs are all "Compute".
    if category.resource_family != "Compute":
        return None
    usage = _USAGE.get(category.usage_type)
    if usage is None:  # Commit1Yr, Commit3Yr, ...: committed use, not on demand or spot
        return None
    text = sku.description
    prefix = next((p for p in _SPOT_PREFIXES if text.startswith(p)), "")
    if (usage == "spot") != bool(prefix):  # a spot price must say so in both places
        return None
    text = text[len(prefix) :]
    machine = _MACHINE.fullmatch(text)
    if machine:
        family = machine["family"].lower()
        if family not in FAMILIES:
            return None
        return ("cores" if machine["part"] == "Core" else "ram", family, usage)
    gpu = _GPU.fullmatch(text)
    if gpu and gpu["name"] in ACCELERATORS:
        return ("accelerators", ACCELERATORS[gpu["name"]], usage)
    return None


def _latest(sku: Any) -> Any:
    # Sku.pricing_info: "A timeline of pricing info for this SKU in chronological order".
    return sku.pricing_info[-1]


def _hourly_price(sku: Any, unit: str) -> tuple[float | None, str]:
    """The SKU's latest price per ``unit`` in USD, or None and why it cannot be read as one."""
    if not sku.pricing_info:
        return None, "no pricing_info"
    expression = _latest(sku).pricing_expression
    if expression.usage_unit != unit:
        return None, f"priced per {expression.usage_unit!r}, not per {unit!r}"
    # tiered_rates is "sorted by ascending order of start_usage_amount"; the first usage is priced
    # by the tier that starts at 0 (a tier starting later means the first units are free).
    first = next((t for t in expression.tiered_rates if t.start_usage_amount == 0), None)
    if first is None:
        return None, "no tier starting at 0"
    money = first.unit_price
    if money.currency_code not in ("", "USD"):
        return None, f"priced in {money.currency_code}, not USD"
    # google.type.Money: units plus nanos (10^-9 units); summed as integers, then divided once, so
    # 0 units + 31611000 nanos is exactly the float 0.031611.
    return (money.units * 1_000_000_000 + money.nanos) / 1e9, ""


def _error(err: Exception, timeout: float, secret: str) -> LaunchError | None:
    """One line a user can act on for an SDK or google-auth error (never naming the API key);
    None for any other exception."""
    from google.api_core import exceptions
    from google.auth import exceptions as auth_exceptions

    def clean(text: str) -> str:
        return text.replace(secret, "***") if secret else text

    if isinstance(err, exceptions.RetryError) and isinstance(err.cause, exceptions.GoogleAPICallError):
        err = err.cause  # UNAVAILABLE until the retry's deadline: the last answer says why
    refused = (
        "the Cloud Billing Catalog API refused the request ({}): give an API key (--api-key-env NAME) or credentials"
    )
    if isinstance(err, auth_exceptions.DefaultCredentialsError):
        return LaunchError(refused.format("no API key given and no application default credentials found"))
    if isinstance(err, auth_exceptions.GoogleAuthError):
        return LaunchError(refused.format(clean(f"credentials: {err}")))
    if isinstance(err, exceptions.GoogleAPICallError):
        code = err.grpc_status_code.name if err.grpc_status_code is not None else str(err.code)
        detail = clean(f"{code}: {err.message}")
        # A wrong key is answered INVALID_ARGUMENT with an ErrorInfo of reason API_KEY_INVALID.
        if isinstance(err, (exceptions.Unauthenticated, exceptions.PermissionDenied)) or err.reason in (
            "API_KEY_INVALID",
            "API_KEY_SERVICE_BLOCKED",
        ):
            return LaunchError(refused.format(detail))
        if isinstance(err, (exceptions.DeadlineExceeded, exceptions.ServiceUnavailable)):
            return LaunchError(
                f"the Cloud Billing Catalog API did not answer within {timeout:g} s ({detail}): "
                "nothing was refreshed; try again, or give a longer timeout"
            )
        return LaunchError(f"the Cloud Billing Catalog API failed the request ({detail})")
    if isinstance(err, exceptions.GoogleAPIError):  # e.g. a RetryError without an answer
        return LaunchError(clean(f"the Cloud Billing Catalog API could not be read: {type(err).__name__}: {err}"))
    return None

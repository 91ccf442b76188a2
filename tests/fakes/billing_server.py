"""A fake Cloud Billing Catalog API (``google.cloud.billing.v1.CloudCatalog``) for offline tests.

The real ``google-cloud-billing`` SDK talks to it unpatched over gRPC with TLS, as the Vertex AI
fake does (tests/fakes/vertex_server.py: the same throwaway CA, trusted by the client through
``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH``, which tests/fixtures/vertex.py sets before the first channel).
gRPC rather than REST because it is the SDK's default transport, i.e. what a user's refresh runs
on, and an API key then reaches the server exactly as Google's front end sees it: the
``x-goog-api-key`` metadata the google-auth API-key credentials add to every call.

Its catalog is a realistic subset of the Compute Engine SKUs (service ``6F81-5844-456A``) for
us-central1 (in the public catalog, "... running in Americas") and europe-west4 ("... running in
Netherlands"): the on-demand and spot prices of the predefined N1/E2/N2/A2/G2 cores and RAM and of
the GPUs Vertex AI trains on, among decoys a price reader must ignore (commitments, sole tenancy,
custom and extended machines, a virtual-workstation GPU, a Dynamic Workload Scheduler GPU, a
premium-image licence, egress, disks and one SKU in a unit it must not read as hourly), spread over several pages. The prices are close to
the public list prices; they are this fake's figures (``FIGURES``), not a source of truth.

Rules it enforces (each cites its source next to the code): the ``parent`` format and known
services, the page size limit and opaque page tokens bound to the request, the currency code, and
an API key or an OAuth bearer token on every call. ``fail(...)`` and ``hang(...)`` inject one-off
faults (UNAVAILABLE, a call that never answers), optionally after a number of good calls.

Top-level imports are stdlib only; grpc and the SDK are imported when a server starts.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

CATALOG_SERVICE = "google.cloud.billing.v1.CloudCatalog"
METHODS = ("ListServices", "ListSkus")
COMPUTE_ENGINE = "6F81-5844-456A"
VERTEX_AI = "C7E2-9256-1C43"
SERVICES = {COMPUTE_ENGINE: "Compute Engine", VERTEX_AI: "Vertex AI"}
API_KEY = "fake-catalog-api-key-0123456789"  # the key the fake accepts unless told otherwise

# catalog-api how-to (cloud.google.com/billing/v1/how-tos/catalog-api): "Results are paginated,
# and are limited to 5000 SKUs per page"; ListSkusRequest.page_size docstring: "Requested page
# size. Defaults to 5000."
MAX_PAGE = 5000
# AIP-158: "The service may return fewer than this value" -- the fake serves at most this many per
# page (whatever is asked), so a catalog of a hundred SKUs still comes in several pages.
PAGE_CAP = 25

# ListSkusRequest.currency_code: "The ISO 4217 currency code for the pricing info in the response
# proto. ... Optional. If not specified USD will be used." The fake knows a few (rates: USD * rate).
CURRENCIES = {"USD": 1.0, "EUR": 0.92, "GBP": 0.79, "JPY": 151.0}

# Where each priced SKU is offered: the catalog names a location in the description and lists its
# regions in service_regions (Sku.service_regions: "List of service regions this SKU is offered at").
LOCATIONS = {
    "Americas": ("us-central1", "us-east1", "us-west1"),
    "Netherlands": ("europe-west4",),
}
REGION_OF = {"Americas": "us-central1", "Netherlands": "europe-west4"}

FAMILIES = ("n1", "e2", "n2", "a2", "g2")
# Vertex AI accelerator_type -> the name in the catalog's GPU SKU descriptions.
GPUS = {
    "NVIDIA_TESLA_T4": "Nvidia Tesla T4",
    "NVIDIA_TESLA_V100": "Nvidia Tesla V100",
    "NVIDIA_TESLA_P100": "Nvidia Tesla P100",
    "NVIDIA_TESLA_P4": "Nvidia Tesla P4",
    "NVIDIA_TESLA_K80": "Nvidia Tesla K80",
    "NVIDIA_TESLA_A100": "Nvidia Tesla A100",
    "NVIDIA_A100_80GB": "Nvidia Tesla A100 80GB",
    "NVIDIA_L4": "Nvidia L4",
}

# (on demand, spot) in USD per hour, RAM per GiB-hour; None: the location has no such SKU.
_PRICES: dict[str, dict[str, dict[str, tuple[float | None, float | None]]]] = {
    "Americas": {
        "cores": {
            "n1": (0.031611, 0.00698),
            "e2": (0.021811, 0.006543),
            "n2": (0.031611, 0.007617),
            "a2": (0.031611, 0.01107),
            "g2": (0.024988, 0.009995),
        },
        "ram": {
            "n1": (0.004237, 0.000936),
            "e2": (0.002923, 0.000877),
            "n2": (0.004237, 0.001021),
            "a2": (0.004237, 0.001484),
            "g2": (0.002928, 0.001171),
        },
        "accelerators": {
            "NVIDIA_TESLA_T4": (0.35, 0.14),
            "NVIDIA_TESLA_V100": (2.48, 0.992),
            "NVIDIA_TESLA_P100": (1.46, 0.584),
            "NVIDIA_TESLA_P4": (0.6, 0.24),
            "NVIDIA_TESLA_K80": (0.45, 0.18),
            "NVIDIA_TESLA_A100": (2.933908, 1.173563),
            "NVIDIA_A100_80GB": (3.92808, 1.571232),
            "NVIDIA_L4": (0.560016, 0.224006),
        },
    },
    "Netherlands": {
        "cores": {
            "n1": (0.034773, 0.00768),
            "e2": (0.023999, 0.007197),
            "n2": (0.034773, 0.008379),
            "a2": (0.034773, 0.012177),
            "g2": (0.027487, 0.010995),
        },
        "ram": {
            "n1": (0.004661, 0.00103),
            "e2": (0.003216, 0.000965),
            "n2": (0.004661, 0.001123),
            "a2": (0.004661, 0.001632),
            "g2": (0.003221, 0.001288),
        },
        "accelerators": {
            "NVIDIA_TESLA_T4": (0.35, 0.14),
            "NVIDIA_TESLA_V100": (2.55, 1.02),
            "NVIDIA_TESLA_P100": (1.6, 0.64),
            "NVIDIA_TESLA_P4": (0.65, 0.26),
            "NVIDIA_TESLA_K80": (None, None),  # K80s were never offered there
            "NVIDIA_TESLA_A100": (3.227298, 1.29092),
            "NVIDIA_A100_80GB": (4.320888, 1.728355),
            "NVIDIA_L4": (0.644046, None),  # no spot SKU: a slot the catalog lacks
        },
    },
}


def _figures() -> dict[str, dict]:
    """What a correct reader gets per region: ``fetch_components``' shape."""
    out = {}
    for location, kinds in _PRICES.items():
        out[REGION_OF[location]] = {
            kind: {name: {"on_demand": od, "spot": spot} for name, (od, spot) in slots.items()}
            for kind, slots in kinds.items()
        }
    return out


FIGURES = _figures()


# --------------------------------------------------------------------------- the catalog


@dataclass
class SkuRow:
    """One SKU, as the catalog's fields (price in USD per usage_unit, tiers as (start, price))."""

    description: str
    usage_type: str  # Category.usage_type: "OnDemand", "Preemptible", "Commit1Yr", ...
    resource_group: str
    regions: tuple[str, ...]
    usage_unit: str
    price: float = 0.0
    resource_family: str = "Compute"
    service: str = COMPUTE_ENGINE
    tiers: tuple[tuple[float, float], ...] = ()  # more than one tier (egress); else one from 0
    sku_id: str = ""

    def __post_init__(self) -> None:
        if not self.sku_id:  # the fake's own ids, in the catalog's XXXX-XXXX-XXXX form
            digest = hashlib.sha256(f"{self.service}/{self.description}/{self.usage_unit}".encode()).hexdigest()
            self.sku_id = "-".join(digest[i : i + 4] for i in (0, 4, 8)).upper()


# PricingExpression for the units the catalog uses: usage_unit, its description, base unit and
# "unit_price / base_unit_conversion_factor = price per base_unit" (cloud_catalog.proto).
UNITS = {
    "h": ("hour", "s", "second", 3600.0),
    "GiBy.h": ("gibibyte hour", "By.s", "byte second", 3600.0 * 2**30),
    "GiBy.mo": ("gibibyte month", "By.s", "byte second", 2592000.0 * 2**30),
    "GiBy": ("gibibyte", "By", "byte", float(2**30)),
    "min": ("minute", "s", "second", 60.0),
}


def _component_rows() -> list[SkuRow]:
    rows = []
    for location, kinds in _PRICES.items():
        regions = LOCATIONS[location]
        for kind, slots in kinds.items():
            for name, (on_demand, spot) in slots.items():
                if kind == "accelerators":
                    base, group, unit = f"{GPUS[name]} GPU", "GPU", "h"
                else:
                    word = "Core" if kind == "cores" else "Ram"
                    # Only N1's SKUs say "Predefined" (public catalog: "N1 Predefined Instance Core
                    # running in Americas" but "E2 Instance Core running in Americas").
                    base = f"{name.upper()} {'Predefined ' if name == 'n1' else ''}Instance {word}"
                    group = "RAM" if kind == "ram" else ("N1Standard" if name == "n1" else "CPU")
                    unit = "GiBy.h" if kind == "ram" else "h"
                if on_demand is not None:
                    rows.append(SkuRow(f"{base} running in {location}", "OnDemand", group, regions, unit, on_demand))
                if spot is not None:
                    # Spot VMs' SKUs kept the preemptible usage type; their descriptions gained
                    # "Spot " in front of "Preemptible". Netherlands' N1 keeps the older form.
                    prefix = "Preemptible " if (location, name) == ("Netherlands", "n1") else "Spot Preemptible "
                    rows.append(
                        SkuRow(f"{prefix}{base} running in {location}", "Preemptible", group, regions, unit, spot)
                    )
    return rows


AMERICAS = LOCATIONS["Americas"]
# Decoys: SKUs a reader of on-demand and spot component prices must not take. Each says why.
DECOYS = [
    # Committed use discounts: a price per hour, but only under a 1- or 3-year commitment.
    SkuRow("Commitment v1: Cpu in Americas for 1 Year", "Commit1Yr", "CPU", AMERICAS, "h", 0.019915),
    SkuRow("Commitment v1: Ram in Americas for 3 Year", "Commit3Yr", "RAM", AMERICAS, "GiBy.h", 0.001907),
    SkuRow(
        "Commitment v1: Nvidia Tesla T4 GPU running in Americas for 1 Year", "Commit1Yr", "GPU", AMERICAS, "h", 0.22
    ),
    SkuRow("Commitment v1: A2 Cpu in Americas for 1 Year", "Commit1Yr", "CPU", AMERICAS, "h", 0.019915),
    # Sole-tenant nodes and their premium.
    SkuRow("N1 Sole Tenancy Instance Core running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.0348),
    SkuRow("N1 Sole Tenancy Instance Ram running in Americas", "OnDemand", "RAM", AMERICAS, "GiBy.h", 0.00466),
    SkuRow("Sole Tenancy Instance Core Premium running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.003161),
    # Custom and extended-memory machine types cost more than predefined ones.
    SkuRow("Custom Instance Core running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.033174),
    SkuRow("N2 Custom Instance Core running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.033191),
    SkuRow("N2 Custom Instance Ram running in Americas", "OnDemand", "RAM", AMERICAS, "GiBy.h", 0.004449),
    SkuRow("N2 Custom Extended Instance Ram running in Americas", "OnDemand", "RAM", AMERICAS, "GiBy.h", 0.009550),
    SkuRow("Spot Preemptible N2 Custom Instance Core running in Americas", "Preemptible", "CPU", AMERICAS, "h", 0.008),
    # Other machine families whose names start like ours.
    SkuRow("N2D AMD Instance Core running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.027502),
    SkuRow("Memory-optimized Instance Core running in Americas", "OnDemand", "CPU", AMERICAS, "h", 0.0356),
    # A virtual-workstation GPU (a licence on top of the GPU) and a premium image's licence.
    SkuRow("Nvidia Tesla T4 Virtual Workstation GPU running in Americas", "OnDemand", "GPU", AMERICAS, "h", 0.55),
    # GPUs under the Dynamic Workload Scheduler (a price of its own), and one Vertex AI's table
    # does not name.
    SkuRow(
        "Nvidia Tesla A100 80GB GPU attached to DWS Defined Duration VMs running in Americas",
        "OnDemand",
        "GPU",
        AMERICAS,
        "h",
        2.7496,
    ),
    SkuRow("Nvidia H100 80GB GPU running in Americas", "OnDemand", "GPU", AMERICAS, "h", 11.06),
    SkuRow(
        "Licensing Fee for Windows Server 2022 Datacenter Edition (CPU cost)",
        "OnDemand",
        "Windows",
        ("global",),
        "h",
        0.046,
        resource_family="License",
    ),
    # Not compute time at all: a disk, and egress (priced in tiers).
    SkuRow("Storage PD Capacity", "OnDemand", "PDStandard", AMERICAS, "GiBy.mo", 0.04, resource_family="Storage"),
    SkuRow(
        "Network Internet Egress from Americas to Americas",
        "OnDemand",
        "PremiumInternetEgress",
        AMERICAS,
        "GiBy",
        resource_family="Network",
        tiers=((0.0, 0.0), (1.0, 0.12), (1024.0, 0.11), (10240.0, 0.08)),
    ),
]
# A SKU that names a slot we read but is priced per minute, not per hour: a reader that ignored
# usage_unit would take it (it comes first) at a price 60 times too low.
WRONG_UNIT = SkuRow("Nvidia Tesla P4 GPU running in Americas", "OnDemand", "GPU", AMERICAS, "min", 0.01)
# What the Vertex AI service lists (a reader of Compute Engine must not see these).
VERTEX_ROWS = [
    SkuRow(
        "Custom Training: N1 Predefined Instance Core running in Americas",
        "OnDemand",
        "CPU",
        AMERICAS,
        "h",
        0.036352,
        service=VERTEX_AI,
    ),
]


def default_catalog() -> list[SkuRow]:
    """The fake's SKUs in the order it lists them (the real order is not documented): components
    and decoys interleaved, the wrong-unit P4 before the real one."""
    components = _component_rows()
    rows: list[SkuRow] = []
    decoys = list(DECOYS)
    for i, row in enumerate(components):
        if row.description == WRONG_UNIT.description and row.usage_unit == "h":
            rows.append(WRONG_UNIT)
        rows.append(row)
        if i % 4 == 3 and decoys:
            rows.append(decoys.pop(0))
    return rows + decoys + VERTEX_ROWS


def _money(amount: float, currency: str) -> dict:
    nanos_total = round(amount * 1e9)
    return {"currency_code": currency, "units": nanos_total // 1_000_000_000, "nanos": nanos_total % 1_000_000_000}


def sku_message(row: SkuRow, currency: str = "USD") -> Any:
    """The row as a ``billing_v1.Sku`` (prices converted to ``currency``)."""
    from google.cloud import billing_v1

    rate = CURRENCIES[currency]
    unit_description, base_unit, base_description, factor = UNITS[row.usage_unit]
    tiers = row.tiers or ((0.0, row.price),)
    expression = billing_v1.PricingExpression(
        usage_unit=row.usage_unit,
        usage_unit_description=unit_description,
        base_unit=base_unit,
        base_unit_description=base_description,
        base_unit_conversion_factor=factor,
        display_quantity=1,
        tiered_rates=[
            billing_v1.PricingExpression.TierRate(start_usage_amount=start, unit_price=_money(price * rate, currency))
            for start, price in tiers
        ],
    )
    # PricingInfo.effective_time: "If a time range was not specified in the request this field will
    # be equivalent to a time within the last 12 hours, indicating the latest pricing info".
    info = billing_v1.PricingInfo(
        effective_time={"seconds": int(time.time()) - 3600},
        summary="",
        pricing_expression=expression,
        aggregation_info=billing_v1.AggregationInfo(
            aggregation_level=billing_v1.AggregationInfo.AggregationLevel.ACCOUNT,
            aggregation_interval=billing_v1.AggregationInfo.AggregationInterval.MONTHLY,
            aggregation_count=1,
        ),
        currency_conversion_rate=rate,
    )
    return billing_v1.Sku(
        name=f"services/{row.service}/skus/{row.sku_id}",
        sku_id=row.sku_id,
        description=row.description,
        category=billing_v1.Category(
            service_display_name=SERVICES[row.service],
            resource_family=row.resource_family,
            resource_group=row.resource_group,
            usage_type=row.usage_type,
        ),
        service_regions=list(row.regions),
        pricing_info=[info],
        service_provider_name="Google",
    )


# --------------------------------------------------------------------------- state and rules


class CatalogError(Exception):
    """An API error: a gRPC status name, a message, and optionally a google.rpc.ErrorInfo reason."""

    def __init__(self, code: str, message: str, reason: str | None = None):
        self.code, self.message, self.reason = code, message, reason
        super().__init__(f"{code}: {message}")


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    request: dict
    metadata: dict = field(default_factory=dict)


@dataclass
class _Fault:
    kind: str  # fail | hang
    code: str = ""
    message: str = ""
    skip: int = 0  # good calls to let through first


class CatalogState:
    """The in-memory catalog the gRPC service serves, with its test controls."""

    def __init__(self, rows: list[SkuRow] | None = None) -> None:
        self.lock = threading.Lock()
        self.rows = list(rows if rows is not None else default_catalog())
        self.api_keys = {API_KEY}
        self.page_cap = PAGE_CAP
        self.requests: list[Recorded] = []
        self.faults: dict[str, list[_Fault]] = {}
        self.released = threading.Event()

    # -- test controls --------------------------------------------------------------------
    def add_skus(self, rows: list[SkuRow], first: bool = False) -> None:
        """Add SKUs to the catalog (at the end, or with ``first`` at the start)."""
        with self.lock:
            self.rows = list(rows) + self.rows if first else self.rows + list(rows)

    def fail(self, method: str, code: str, times: int = 1, skip: int = 0, message: str | None = None) -> None:
        """After ``skip`` good calls, the next ``times`` calls of ``method`` fail with ``code``."""
        self._add(
            method, [_Fault("fail", code, message or f"injected {code} for {method}") for _ in range(times)], skip
        )

    def hang(self, method: str, times: int = 1, skip: int = 0) -> None:
        """After ``skip`` good calls, the next ``times`` calls of ``method`` never answer (until
        ``release()`` or the fake stops): the client's deadline is what ends them."""
        self._add(method, [_Fault("hang") for _ in range(times)], skip)

    def release(self) -> None:
        """End every hang now and from now on."""
        self.released.set()

    def calls(self, method: str) -> list[Recorded]:
        with self.lock:
            return [r for r in self.requests if r.method == method]

    def _add(self, method: str, faults: list[_Fault], skip: int) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; one of {METHODS}")
        if faults:
            faults[0].skip = skip
        with self.lock:
            self.faults.setdefault(method, []).extend(faults)

    # -- the service ----------------------------------------------------------------------
    def begin(self, method: str, request: Any, metadata: dict) -> None:
        """Record a call, apply a pending fault, then check its credentials."""
        as_dict = type(request).to_dict(request, always_print_fields_with_no_presence=False)
        with self.lock:
            self.requests.append(Recorded(method, as_dict, metadata))
            pending = self.faults.get(method) or []
            fault = None
            if pending and pending[0].skip > 0:
                pending[0].skip -= 1
            elif pending:
                fault = pending.pop(0)
        if fault and fault.kind == "hang":
            self.released.wait(300)
        elif fault:
            raise CatalogError(fault.code, fault.message)
        self._authenticate(metadata)

    def _authenticate(self, metadata: dict) -> None:
        # The Catalog API is called with an API key or OAuth: catalog-api how-to ("you'll need ...
        # an API key"); the API's discovery document on ``key``: "API key. ... Required unless you
        # provide an OAuth 2.0 token." google-auth's API-key credentials send it as the
        # ``x-goog-api-key`` header (google/auth/api_key.py), OAuth credentials as
        # ``authorization: Bearer <token>``.
        key = metadata.get("x-goog-api-key")
        if key is not None:
            if key not in self.api_keys:
                # Google's answer to a wrong key: 400 INVALID_ARGUMENT "API key not valid. Please
                # pass a valid API key." with an ErrorInfo of reason API_KEY_INVALID.
                raise CatalogError(
                    "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", "API_KEY_INVALID"
                )
            return
        authorization = metadata.get("authorization", "")
        if authorization.startswith("Bearer ") and authorization[len("Bearer ") :].strip():
            return
        raise CatalogError(
            "UNAUTHENTICATED",
            "Method doesn't allow unregistered callers (callers without established identity). "
            "Please use API Key or other form of API consumer identity to call this API.",
            "CREDENTIALS_MISSING",
        )

    def list_services(self, request: Any) -> Any:
        from google.cloud import billing_v1

        # ListServicesRequest.page_size: "Defaults to 5000"; two services fit in any page.
        if request.page_size < 0:
            raise CatalogError("INVALID_ARGUMENT", "page_size must not be negative")
        if request.page_token:
            raise CatalogError("INVALID_ARGUMENT", "Invalid page token")
        services = [
            billing_v1.Service(
                name=f"services/{sid}", service_id=sid, display_name=name, business_entity_name="businessEntities/GCP"
            )
            for sid, name in SERVICES.items()
        ]
        return billing_v1.ListServicesResponse(services=services)

    def list_skus(self, request: Any) -> Any:
        from google.cloud import billing_v1

        service = self._service(request.parent)
        currency = self._currency(request.currency_code)
        self._time_range(request)
        # AIP-158: page_size "must not be negative" (INVALID_ARGUMENT); 0 means the default
        # (ListSkusRequest.page_size: "Defaults to 5000"); more than the 5000 the how-to names is
        # served as 5000 ("values above ... will be coerced"); and the service may serve fewer.
        if request.page_size < 0:
            raise CatalogError("INVALID_ARGUMENT", "page_size must not be negative")
        size = min(request.page_size or MAX_PAGE, MAX_PAGE, self.page_cap)
        with self.lock:
            rows = [row for row in self.rows if row.service == service]
        start = self._offset(request.page_token, request.parent, currency, len(rows))
        page = rows[start : start + size]
        token = _token(request.parent, currency, start + size) if start + size < len(rows) else ""
        return billing_v1.ListSkusResponse(skus=[sku_message(r, currency) for r in page], next_page_token=token)

    def _service(self, parent: str) -> str:
        # ListSkusRequest.parent: "Required. The name of the service. Example:
        # services/DA34-426B-A397"; the HTTP rule is GET /v1/{parent=services/*}/skus. Anything
        # else is an invalid argument (google.rpc.Code INVALID_ARGUMENT: "the client specified an
        # invalid argument"); a well-formed name of no service is NOT_FOUND ("some requested
        # entity ... was not found").
        kind, _, sid = parent.partition("/")
        if kind != "services" or not sid or "/" in sid:
            raise CatalogError("INVALID_ARGUMENT", f"Invalid parent {parent!r}: expected services/{{service_id}}")
        if sid not in SERVICES:
            raise CatalogError("NOT_FOUND", f"Service {parent!r} not found")
        return sid

    @staticmethod
    def _currency(code: str) -> str:
        # currency_code: ISO 4217, "If not specified USD will be used"; a code the service does not
        # price in is an invalid argument (google.rpc.Code INVALID_ARGUMENT).
        code = code or "USD"
        if code not in CURRENCIES:
            raise CatalogError("INVALID_ARGUMENT", f"Invalid currency code {code!r}")
        return code

    @staticmethod
    def _time_range(request: Any) -> None:
        # start_time/end_time: "Timestamps in the future are not allowed." The fake keeps only the
        # latest prices, so a past range is answered with them.
        now = time.time()
        for name in ("start_time", "end_time"):
            if name in request and getattr(request, name).timestamp() > now + 60:
                raise CatalogError("INVALID_ARGUMENT", f"{name} must not be in the future")

    @staticmethod
    def _offset(token: str, parent: str, currency: str, total: int) -> int:
        # ListSkusRequest.page_token: "This should be a next_page_token value returned from a
        # previous ListSkus call." AIP-158: "When paginating, all other parameters provided to
        # ListSkus must match the call that provided the page token"; a token that is not one the
        # service gave, or was given for other parameters, is an INVALID_ARGUMENT.
        if not token:
            return 0
        try:
            data = json.loads(base64.urlsafe_b64decode(token.encode()))
            offset = int(data["o"])
            same = data["p"] == parent and data["c"] == currency
        except (ValueError, KeyError, TypeError):
            raise CatalogError("INVALID_ARGUMENT", "Invalid page token") from None
        if not same or not 0 < offset < total:
            raise CatalogError("INVALID_ARGUMENT", "Invalid page token")
        return offset


def _token(parent: str, currency: str, offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"p": parent, "c": currency, "o": offset}).encode()).decode()


# --------------------------------------------------------------------------- gRPC transport


def _abort(context: Any, err: CatalogError) -> None:
    import grpc

    if not err.reason:
        context.abort(getattr(grpc.StatusCode, err.code), err.message)
    from google.protobuf import any_pb2
    from google.rpc import error_details_pb2, status_pb2
    from grpc_status import rpc_status

    detail = any_pb2.Any()
    detail.Pack(error_details_pb2.ErrorInfo(reason=err.reason, domain="googleapis.com"))
    code = getattr(grpc.StatusCode, err.code).value[0]
    context.abort_with_status(rpc_status.to_status(status_pb2.Status(code=code, message=err.message, details=[detail])))


def _handler(state: CatalogState) -> Any:
    import grpc
    from google.cloud import billing_v1

    def wrap(method: str, fn: Any) -> Any:
        def handler(request: Any, context: Any) -> Any:
            metadata = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
            try:
                state.begin(method, request, metadata)
                return fn(request)
            except CatalogError as err:
                _abort(context, err)

        return handler

    def rpc(method: str, fn: Any, request_cls: Any, response_cls: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            wrap(method, fn), request_deserializer=request_cls.deserialize, response_serializer=response_cls.serialize
        )

    v1 = billing_v1
    return grpc.method_handlers_generic_handler(
        CATALOG_SERVICE,
        {
            "ListServices": rpc("ListServices", state.list_services, v1.ListServicesRequest, v1.ListServicesResponse),
            "ListSkus": rpc("ListSkus", state.list_skus, v1.ListSkusRequest, v1.ListSkusResponse),
        },
    )


class FakeCatalog:
    """The fake on a free loopback port: ``endpoint`` is ``localhost:PORT`` (TLS, the certificate's
    name), ``api_key`` the key it accepts; ``fail``, ``hang``, ``release``, ``add_skus``,
    ``calls`` and ``requests`` as on ``CatalogState``."""

    def __init__(self, certs: Any, rows: list[SkuRow] | None = None) -> None:
        from concurrent import futures

        import grpc

        self.state = CatalogState(rows)
        self.api_key = API_KEY
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        self._server.add_generic_rpc_handlers([_handler(self.state)])
        creds = grpc.ssl_server_credentials([(certs.key_file.read_bytes(), certs.cert_file.read_bytes())])
        self.port = self._server.add_secure_port("127.0.0.1:0", creds)
        self._server.start()
        self.endpoint = f"localhost:{self.port}"

    @property
    def requests(self) -> list[Recorded]:
        with self.state.lock:
            return list(self.state.requests)

    def __getattr__(self, name: str) -> Any:
        if name in ("fail", "hang", "release", "add_skus", "calls"):
            return getattr(self.state, name)
        raise AttributeError(name)

    def stop(self) -> None:
        self.state.release()
        self._server.stop(grace=None)

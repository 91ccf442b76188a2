"""Prices refresh: Compute Engine component prices read from the Cloud Billing Catalog API with the
real google-cloud-billing SDK, against the fake CloudCatalog service (tests/fakes/billing_server.py)."""

from __future__ import annotations

import datetime as _dt
import logging
import sys

import pytest

from launch_jupyter._extras import MissingExtra
from launch_jupyter.core.errors import LaunchError
from launch_jupyter.runners.vertex._catalog import SERVICE, fetch_components
from tests.fakes.billing_server import (
    COMPUTE_ENGINE,
    DECOYS,
    FIGURES,
    VERTEX_AI,
    WRONG_UNIT,
    SkuRow,
    default_catalog,
)

REFUSED = "the Cloud Billing Catalog API refused the request"


def fetch(fake, regions=("us-central1",), **kwargs):
    kwargs.setdefault("api_key", fake.api_key)
    kwargs.setdefault("timeout", 10)
    return fetch_components(list(regions), endpoint=fake.endpoint, **kwargs)


# --------------------------------------------------------------------------- what is read


def test_us_central1_components_are_the_catalogs_figures_on_demand_and_spot(fake_catalog):
    prices = fetch(fake_catalog)

    us = prices["us-central1"]
    assert us["cores"]["n1"] == {"on_demand": 0.031611, "spot": 0.00698}
    assert us["ram"]["n1"] == {"on_demand": 0.004237, "spot": 0.000936}
    assert us["cores"]["e2"] == {"on_demand": 0.021811, "spot": 0.006543}
    assert us["accelerators"]["NVIDIA_TESLA_T4"] == {"on_demand": 0.35, "spot": 0.14}
    assert us["accelerators"]["NVIDIA_A100_80GB"]["on_demand"] == 3.92808
    assert us["accelerators"]["NVIDIA_TESLA_A100"]["on_demand"] == 2.933908
    assert us == FIGURES["us-central1"]
    meta = prices["_meta"]
    assert meta["service"] == SERVICE == f"services/{COMPUTE_ENGINE}"
    assert meta["fetched_at"].endswith("+00:00")
    assert set(prices) == {"us-central1", "_meta"}


def test_europe_west4_has_its_own_prices_and_none_where_the_catalog_has_no_sku(fake_catalog):
    prices = fetch(fake_catalog, ["us-central1", "europe-west4"])

    eu = prices["europe-west4"]
    assert eu == FIGURES["europe-west4"]
    assert eu["cores"]["n1"] == {"on_demand": 0.034773, "spot": 0.00768}  # spot SKU named "Preemptible ..."
    assert eu["accelerators"]["NVIDIA_TESLA_K80"] == {"on_demand": None, "spot": None}
    assert eu["accelerators"]["NVIDIA_L4"] == {"on_demand": 0.644046, "spot": None}
    assert prices["_meta"]["missing_regions"] == []


def test_decoys_are_ignored(fake_catalog):
    prices = fetch(fake_catalog)

    us = prices["us-central1"]
    # The per-minute P4 SKU comes first in the catalog; it is skipped (and said so), not read.
    assert us["accelerators"]["NVIDIA_TESLA_P4"]["on_demand"] == 0.6
    assert prices["_meta"]["skipped"] == [
        {
            "sku": f"services/{COMPUTE_ENGINE}/skus/{WRONG_UNIT.sku_id}",
            "description": WRONG_UNIT.description,
            "usage_unit": "min",
            "reason": "priced per 'min', not per 'h'",
        }
    ]
    assert prices["_meta"]["ambiguous"] == []
    # No decoy's price shows up anywhere (commitments, sole tenancy, custom, N2D, vWS, licences).
    decoy_prices = {row.price for row in DECOYS} - {0.0}
    both = fetch(fake_catalog, ["us-central1", "europe-west4"])
    read = {
        price
        for region in ("us-central1", "europe-west4")
        for kind in both[region].values()
        for pair in kind.values()
        for price in pair.values()
    }
    assert not read & decoy_prices


def test_a_catalog_of_decoys_only_gives_no_components(fake_catalog):
    fake_catalog.state.rows = list(DECOYS)

    prices = fetch(fake_catalog)

    assert prices["us-central1"] == {}
    assert prices["_meta"]["missing_regions"] == ["us-central1"]


def test_every_page_is_read_with_the_largest_page_size(fake_catalog):
    prices = fetch(fake_catalog)

    calls = fake_catalog.calls("ListSkus")
    compute_skus = [r for r in default_catalog() if r.service == COMPUTE_ENGINE]
    assert len(calls) == prices["_meta"]["pages"] == -(-len(compute_skus) // fake_catalog.state.page_cap) > 2
    assert prices["_meta"]["skus_read"] == len(compute_skus)
    first = calls[0].request
    assert first["parent"] == "services/6F81-5844-456A"
    assert first["currency_code"] == "USD"
    assert first["page_size"] == 5000
    assert "page_token" not in first
    assert all(c.request.get("page_token") for c in calls[1:])
    assert len({c.request["page_token"] for c in calls[1:]}) == len(calls) - 1


def test_a_region_the_catalog_lacks_is_reported_missing(fake_catalog):
    prices = fetch(fake_catalog, ["us-central1", "asia-south2"])

    assert prices["asia-south2"] == {}
    assert prices["_meta"]["missing_regions"] == ["asia-south2"]
    assert prices["us-central1"] == FIGURES["us-central1"]


def test_two_skus_for_one_slot_are_recorded_as_ambiguous_and_the_first_kept(fake_catalog):
    twin = SkuRow("N1 Predefined Instance Core running in Iowa", "OnDemand", "N1Standard", ("us-central1",), "h", 0.05)
    fake_catalog.add_skus([twin])

    prices = fetch(fake_catalog)

    assert prices["us-central1"]["cores"]["n1"]["on_demand"] == 0.031611
    (entry,) = prices["_meta"]["ambiguous"]
    assert entry["region"] == "us-central1"
    assert entry["slot"] == "cores.n1.on_demand"
    assert entry["kept"]["description"] == "N1 Predefined Instance Core running in Americas"
    assert entry["dropped"] == {
        "sku": f"services/{COMPUTE_ENGINE}/skus/{twin.sku_id}",
        "description": twin.description,
        "price": 0.05,
    }


def test_oauth_credentials_instead_of_a_key(fake_catalog):
    from google.oauth2.credentials import Credentials

    prices = fetch(fake_catalog, api_key=None, credentials=Credentials(token="ya29.fake-token"))

    assert prices["us-central1"] == FIGURES["us-central1"]
    metadata = fake_catalog.calls("ListSkus")[0].metadata
    assert metadata["authorization"] == "Bearer ya29.fake-token"
    assert "x-goog-api-key" not in metadata


# --------------------------------------------------------------------------- refusals and faults


def test_no_key_and_no_identity_gives_the_one_clear_message(fake_catalog):
    from google.auth.credentials import AnonymousCredentials

    with pytest.raises(LaunchError) as caught:
        fetch(fake_catalog, api_key=None, credentials=AnonymousCredentials())

    message = str(caught.value)
    assert message.startswith(f"{REFUSED} (UNAUTHENTICATED: ")
    assert message.endswith("give an API key (--api-key-env NAME) or credentials")
    assert "\n" not in message


def test_no_key_and_no_application_default_credentials(fake_catalog, monkeypatch, tmp_path):
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud ADC file here

    with pytest.raises(LaunchError) as caught:
        fetch(fake_catalog, api_key=None)

    assert str(caught.value) == (
        f"{REFUSED} (no API key given and no application default credentials found): "
        "give an API key (--api-key-env NAME) or credentials"
    )
    assert fake_catalog.requests == []


def test_a_wrong_key_is_refused_and_never_shown(fake_catalog, caplog):
    caplog.set_level(logging.DEBUG)
    key = "AIzaSy-wrong-key-never-to-be-shown"

    with pytest.raises(LaunchError) as caught:
        fetch(fake_catalog, api_key=key)

    assert str(caught.value).startswith(f"{REFUSED} (INVALID_ARGUMENT: API key not valid.")
    assert key not in str(caught.value)
    assert key not in repr(caught.value.__cause__) and caught.value.__suppress_context__
    assert key not in caplog.text
    assert fake_catalog.calls("ListSkus")[0].metadata["x-goog-api-key"] == key  # it was sent, as a header


def test_the_key_never_reaches_a_log_line(fake_catalog, caplog):
    caplog.set_level(logging.DEBUG)

    prices = fetch(fake_catalog)

    assert prices["us-central1"]
    assert "Cloud Billing Catalog: page 1" in caplog.text  # our debug lines were captured
    assert fake_catalog.api_key not in caplog.text


def test_permission_denied_is_the_refused_message(fake_catalog):
    fake_catalog.fail("ListSkus", "PERMISSION_DENIED", message="Cloud Billing API has not been used in project 1")

    with pytest.raises(LaunchError, match=r"refused the request \(PERMISSION_DENIED: Cloud Billing API"):
        fetch(fake_catalog)


def test_a_hang_is_a_launch_error_within_the_timeout(fake_catalog):
    fake_catalog.hang("ListSkus", skip=1)  # the second page never comes

    with pytest.raises(LaunchError) as caught:
        fetch(fake_catalog, timeout=0.5)

    assert str(caught.value).startswith("the Cloud Billing Catalog API did not answer within 0.5 s (DEADLINE_EXCEEDED")
    assert len(fake_catalog.calls("ListSkus")) == 2


def test_one_unavailable_page_is_asked_again(fake_catalog):
    fake_catalog.fail("ListSkus", "UNAVAILABLE", skip=2)

    prices = fetch(fake_catalog)

    assert prices["us-central1"] == FIGURES["us-central1"]
    calls = fake_catalog.calls("ListSkus")
    assert len(calls) == prices["_meta"]["pages"] + 1
    assert calls[2].request == calls[3].request  # the same page, asked twice


def test_unavailable_throughout_is_a_launch_error(fake_catalog):
    fake_catalog.fail("ListSkus", "UNAVAILABLE", times=1000)

    with pytest.raises(LaunchError, match=r"did not answer within 0\.5 s \(UNAVAILABLE: injected"):
        fetch(fake_catalog, timeout=0.5)


def test_key_and_credentials_together_are_refused_before_any_call(fake_catalog):
    from google.auth.credentials import AnonymousCredentials

    with pytest.raises(LaunchError, match="an API key or credentials, not both"):
        fetch(fake_catalog, credentials=AnonymousCredentials())
    assert fake_catalog.requests == []


def test_without_the_sdk_the_vertex_extra_is_named(fake_catalog, monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.billing_v1", None)  # the SDK is not installed

    with pytest.raises(MissingExtra) as caught:
        fetch(fake_catalog)

    assert str(caught.value) == (
        "launch-jupyter prices refresh needs launch-jupyter's vertex extra: pip install 'launch-jupyter[vertex]'"
    )


# --------------------------------------------------------------------------- the fake's own rules


@pytest.fixture
def sdk(fake_catalog):
    """The SDK's client on the fake, with the fake's key."""
    from google.api_core.client_options import ClientOptions
    from google.cloud import billing_v1

    client = billing_v1.CloudCatalogClient(
        client_options=ClientOptions(api_endpoint=fake_catalog.endpoint, api_key=fake_catalog.api_key)
    )
    yield client
    client.transport.close()


def _first_page(sdk, **request):
    request.setdefault("parent", SERVICE)
    return next(iter(sdk.list_skus(request=request, timeout=10).pages))


@pytest.mark.parametrize(
    ("request_fields", "error"),
    [
        ({"parent": "6F81-5844-456A"}, "InvalidArgument"),
        ({"parent": "services/6F81-5844-456A/skus"}, "InvalidArgument"),
        ({"parent": "services/0000-0000-0000"}, "NotFound"),
        ({"currency_code": "XYZ"}, "InvalidArgument"),
        ({"page_size": -1}, "InvalidArgument"),
        ({"page_token": "not-a-token"}, "InvalidArgument"),
        ({"start_time": _dt.datetime.now(_dt.timezone.utc) + _dt.timedelta(days=1)}, "InvalidArgument"),
    ],
)
def test_the_fake_refuses_what_the_service_refuses(sdk, request_fields, error):
    from google.api_core import exceptions

    with pytest.raises(getattr(exceptions, error)):
        _first_page(sdk, **request_fields)


def test_the_fake_binds_a_page_token_to_its_request(sdk):
    from google.api_core import exceptions

    token = _first_page(sdk).next_page_token
    assert _first_page(sdk, page_token=token).skus
    with pytest.raises(exceptions.InvalidArgument):
        _first_page(sdk, page_token=token, currency_code="EUR")


def test_the_fake_honours_page_size_and_caps_it(sdk, fake_catalog):
    assert len(_first_page(sdk, page_size=7).skus) == 7
    fake_catalog.state.page_cap = 10_000
    assert len(_first_page(sdk, page_size=100_000).skus) == len(
        [r for r in default_catalog() if r.service == COMPUTE_ENGINE]
    )  # under 5000 SKUs: all of them in one page


def test_the_fake_prices_in_the_currency_asked_and_lists_its_services(sdk):
    sku = _first_page(sdk, currency_code="EUR").skus[0]
    info = sku.pricing_info[0]
    assert info.currency_conversion_rate == 0.92
    assert info.pricing_expression.tiered_rates[0].unit_price.currency_code == "EUR"
    services = {s.service_id: s.display_name for s in sdk.list_services(timeout=10)}
    assert services[COMPUTE_ENGINE] == "Compute Engine"
    vertex = _first_page(sdk, parent=f"services/{VERTEX_AI}").skus
    assert [s.description for s in vertex] == ["Custom Training: N1 Predefined Instance Core running in Americas"]

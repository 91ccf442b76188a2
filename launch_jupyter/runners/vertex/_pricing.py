"""Vertex AI custom-training prices: the table, how it is made from component prices, and the
estimate of a run's config against it. No SDK; the table is JSON (``prices.json`` ships with the
package; ``launch-jupyter prices refresh`` writes a newer one from the Cloud Billing Catalog API).

How a price is made: Vertex AI bills custom training per machine hour at the Compute Engine price of
its vCPUs, memory and accelerators plus a Vertex AI premium of 15 % (the Vertex AI pricing page's
figures are exactly that: n1-standard-4 is (4 × $0.031611 + 15 GiB × $0.004237) × 1.15 = $0.2185/h,
an NVIDIA_TESLA_T4 $0.35 × 1.15 = $0.4025/h). So the table is built from Compute Engine component
prices (per vCPU-hour, per GiB-hour, per accelerator-hour, by family and region) and the machine
shapes below; a machine type whose shape or family price is not known has no price.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...core.cost import Estimate, Line

VERTEX_PREMIUM = 1.15
SHIPPED = Path(__file__).with_name("prices.json")
# CustomJob Scheduling.timeout: "The maximum job running time. The default is 7 days."
# (google/cloud/aiplatform/v1/custom_job.proto)
DEFAULT_TIMEOUT_S = 7 * 24 * 3600.0

# Machine shapes (vCPUs, GiB of memory) of the families Vertex AI training offers, from the Compute
# Engine machine family docs: memory per vCPU by type, and the A2 machines' fixed shapes.
_PER_VCPU_GIB = {
    ("n1", "standard"): 3.75,
    ("n1", "highmem"): 6.5,
    ("n1", "highcpu"): 0.9,
    ("n2", "standard"): 4.0,
    ("n2", "highmem"): 8.0,
    ("n2", "highcpu"): 1.0,
    ("e2", "standard"): 4.0,
    ("e2", "highmem"): 8.0,
    ("e2", "highcpu"): 1.0,
    ("g2", "standard"): 4.0,
}
_A2 = {  # a2-highgpu-Ng: 12 vCPUs and 85 GiB per A100; a2-megagpu-16g: 96 vCPUs, 1360 GiB
    "a2-highgpu-1g": (12, 85.0),
    "a2-highgpu-2g": (24, 170.0),
    "a2-highgpu-4g": (48, 340.0),
    "a2-highgpu-8g": (96, 680.0),
    "a2-megagpu-16g": (96, 1360.0),
}
_MACHINE = re.compile(r"(?P<family>[a-z][a-z0-9]*)-(?P<kind>standard|highmem|highcpu)-(?P<vcpus>\d+)")


def machine_shape(machine_type: str) -> tuple[str, int, float] | None:
    """(family, vCPUs, GiB) of a machine type, or None when its shape is not known here."""
    if machine_type in _A2:
        vcpus, gib = _A2[machine_type]
        return "a2", vcpus, gib
    m = _MACHINE.fullmatch(machine_type)
    if not m or (m["family"], m["kind"]) not in _PER_VCPU_GIB:
        return None
    vcpus = int(m["vcpus"])
    return m["family"], vcpus, vcpus * _PER_VCPU_GIB[(m["family"], m["kind"])]


def machine_types() -> list[str]:
    """The machine types a table is made for (the sizes Compute Engine sells of each family)."""
    sizes: dict[str, dict[str, tuple[int, ...]]] = {
        "n1": {"standard": (4, 8, 16, 32, 64, 96), "highmem": (2, 4, 8, 16, 32, 64, 96), "highcpu": (16, 32, 64, 96)},
        "n2": {
            "standard": (4, 8, 16, 32, 48, 64, 80),
            "highmem": (2, 4, 8, 16, 32, 48, 64, 80),
            "highcpu": (16, 32, 48, 64, 80),
        },
        "e2": {"standard": (4, 8, 16, 32), "highmem": (2, 4, 8, 16), "highcpu": (16, 32)},
        "g2": {"standard": (4, 8, 12, 16, 24, 32, 48, 96)},
    }
    out = [f"{fam}-{kind}-{n}" for fam, kinds in sizes.items() for kind, ns in kinds.items() for n in ns]
    return out + list(_A2)


def _price(value: Any) -> float | None:
    return None if value is None else round(float(value) * VERTEX_PREMIUM, 6)


def table_from_components(components: Mapping[str, Any], *, source: str, as_of: str) -> dict[str, Any]:
    """The price table for the regions in ``components`` ({region: {cores, ram, accelerators}}, each
    family or accelerator {on_demand, spot} in USD per hour; None where unknown)."""
    regions: dict[str, Any] = {}
    for region, comp in components.items():
        if region.startswith("_") or not comp:
            continue
        cores, ram = comp.get("cores") or {}, comp.get("ram") or {}
        machines: dict[str, Any] = {}
        for machine in machine_types():
            shape = machine_shape(machine)
            assert shape is not None
            family, vcpus, gib = shape
            entry = {}
            for kind in ("on_demand", "spot"):
                core = (cores.get(family) or {}).get(kind)
                mem = (ram.get(family) or {}).get(kind)
                entry[kind] = None if core is None or mem is None else _price(vcpus * core + gib * mem)
            if entry["on_demand"] is not None or entry["spot"] is not None:
                machines[machine] = entry
        accelerators = {
            name: {kind: _price((prices or {}).get(kind)) for kind in ("on_demand", "spot")}
            for name, prices in (comp.get("accelerators") or {}).items()
        }
        regions[region] = {"machines": machines, "accelerators": accelerators}
    return {
        "service": "Vertex AI custom training",
        "currency": "USD",
        "unit": "per machine hour / per accelerator hour",
        "source": source,
        "as_of": as_of,
        "premium": VERTEX_PREMIUM,
        "components": {k: v for k, v in components.items() if not k.startswith("_")},
        "regions": regions,
    }


def refreshed_path(data_home: Path) -> Path:
    return data_home / "prices" / "vertex.json"


def load_table(data_home: Path | None = None) -> dict[str, Any]:
    """The refreshed table when there is one (``launch-jupyter prices refresh``), else the shipped one.
    Read once per file version (its mtime and size): every submit prices its run."""
    if data_home is not None:
        path = refreshed_path(data_home)
        try:
            stat = path.stat()
            table = _read(str(path), stat.st_mtime_ns, stat.st_size)
            if isinstance(table, dict) and isinstance(table.get("regions"), dict):
                return table
        except (OSError, ValueError):
            pass  # none, or a broken refresh: it never hides the shipped table
    stat = SHIPPED.stat()
    return _read(str(SHIPPED), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=8)
def _read(path: str, _mtime_ns: int, _size: int) -> Any:
    """A table file's JSON (callers must not change it: the same object serves every call)."""
    return json.loads(Path(path).read_text())


def source_line(table: Mapping[str, Any]) -> str:
    return f"{table.get('source', 'unknown source')} (as of {table.get('as_of', 'an unknown date')})"


def estimate(config: Mapping[str, Any], region: str, table: Mapping[str, Any]) -> Estimate:
    """The estimate of a (filled, merged) vertex queue config in ``region`` against ``table``."""
    spec = config.get("spec") or {}
    run = config.get("run") or {}
    spot = str(run.get("scheduling_strategy") or "").upper() == "SPOT"
    kind = "spot" if spot else "on_demand"
    label = "Spot" if spot else "on-demand"
    prices = (table.get("regions") or {}).get(region)
    known_regions = ", ".join(sorted(table.get("regions") or {})) or "none"
    lines: list[Line] = []
    machines = 0
    for i, pool in enumerate(spec.get("worker_pool_specs") or []):
        if not isinstance(pool, dict) or not pool.get("machine_spec"):
            continue  # an empty pool holds a place in the list and runs nothing
        ms = pool["machine_spec"] or {}
        replicas = _int(pool.get("replica_count"), 1)
        machines += replicas
        machine = str(ms.get("machine_type") or "")
        if prices is None:
            why = f"the price table has no region {region} (it has {known_regions})"
            lines.append(Line(f"pool {i}: {machine}", replicas, None, why))
        else:
            price = ((prices.get("machines") or {}).get(machine) or {}).get(kind)
            why = "" if price is not None else f"no {label} price for {machine} in {region}"
            lines.append(Line(f"pool {i}: {machine}", replicas, price, why))
        accel = str(ms.get("accelerator_type") or "")
        count = _int(ms.get("accelerator_count"), 0)
        if accel and accel != "ACCELERATOR_TYPE_UNSPECIFIED" and count > 0:
            if prices is None:
                price, why = None, f"the price table has no region {region} (it has {known_regions})"
            else:
                price = ((prices.get("accelerators") or {}).get(accel) or {}).get(kind)
                why = "" if price is not None else f"no {label} price for {accel} in {region}"
            lines.append(Line(f"pool {i}: {accel}", count * replicas, price, why))
    timeout = run.get("timeout")
    timeout_s = float(timeout) if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) else None
    notes = []
    if spot:
        notes.append("Spot: Vertex AI may stop the job early; prices change over time")
    return Estimate(
        resource="vertex",
        region=region,
        lines=lines,
        machines=machines,
        timeout_s=timeout_s if timeout_s and math.isfinite(timeout_s) else None,
        default_timeout_s=DEFAULT_TIMEOUT_S,
        spot=spot,
        currency=str(table.get("currency") or "USD"),
        source=source_line(table),
        notes=notes,
    )


def _int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default

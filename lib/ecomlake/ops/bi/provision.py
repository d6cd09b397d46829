"""Apply the asset files to a running Superset through its REST API, and read back what it
holds (the provisioned dashboards with their charts, object counts)."""
from __future__ import annotations

import json
import logging
import time

from ecomlake.config import Config
from ecomlake.ops.bi import server
from ecomlake.ops.bi.assets import _uuid, build_bundle, chart_query, load_assets
from ecomlake.ops.bi.client import Client

log = logging.getLogger(__name__)


def counts(client: Client) -> dict[str, int]:
    return {r: client.get(f"/api/v1/{r}/", page_size=1)["count"]
            for r in ("database", "dataset", "chart", "dashboard")}


def provision(cfg: Config, client: Client | None = None) -> dict[str, int]:
    """Apply stack/superset/assets to the running Superset; return the object counts."""
    client = client or Client(cfg)
    spec = load_assets()
    bundle, passwords = build_bundle(cfg, spec)
    client.upload("/api/v1/assets/import/", {"bundle": ("ecomlake_assets.zip", bundle)},
                  {"passwords": json.dumps(passwords)})
    # What the import format cannot say: each chart's saved query context (needed by
    # /api/v1/chart/<id>/data/) names the dataset by its database id, and each native filter
    # lists the ids of the charts in its scope. Both are known only now.
    for dash in spec["dashboards"].values():
        d = client.get(f"/api/v1/dashboard/{dash['slug']}")["result"]
        position = json.loads(d["position_json"])
        ids = {m["meta"]["uuid"]: m["meta"]["chartId"] for m in position.values()
               if isinstance(m, dict) and m.get("type") == "CHART"}
        by_key = {c: ids[_uuid("chart", c)] for row in dash["rows"] for c in row}
        charts = {c["id"]: c for c in client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]}
        for chart_key, chart_id in by_key.items():
            form_data = charts[chart_id]["form_data"]
            ds_id = int(str(form_data["datasource"]).split("__")[0])
            qc = {"datasource": {"id": ds_id, "type": "table"}, "force": False,
                  "queries": [chart_query(spec["charts"][chart_key], spec["datasets"])],
                  "form_data": {**form_data, "slice_id": chart_id},
                  "result_format": "json", "result_type": "full"}
            client.call("PUT", f"/api/v1/chart/{chart_id}",
                        {"query_context": json.dumps(qc), "query_context_generation": True})
        metadata = json.loads(d["json_metadata"])
        all_ids = list(by_key.values())
        for flt in metadata.get("native_filter_configuration", []):
            excluded = set(flt.get("scope", {}).get("excluded", []))
            flt["chartsInScope"] = [i for i in all_ids if i not in excluded]
        metadata.setdefault("global_chart_configuration", {})["chartsInScope"] = all_ids
        metadata.pop("positions", None)   # the API's response adds them; PUT rejects them
        client.call("PUT", f"/api/v1/dashboard/{d['id']}",
                    {"json_metadata": json.dumps(metadata)})
    return counts(client)


def dashboards(client: Client) -> list[dict]:
    """The provisioned dashboards (those of dashboards.yaml), each with its charts."""
    out = []
    for key, dash in load_assets()["dashboards"].items():
        d = client.get(f"/api/v1/dashboard/{dash['slug']}")["result"]
        charts = client.get(f"/api/v1/dashboard/{d['id']}/charts")["result"]
        out.append({"key": key, "id": d["id"], "slug": dash["slug"],
                    "title": d["dashboard_title"], "charts": charts})
    return out


def up(cfg: Config) -> tuple[str, dict[str, int]]:
    """Start Superset (unless it answers) and provision the asset files."""
    started = server.start(cfg)
    t0 = time.monotonic()
    result = provision(cfg)
    log.info("superset: provisioned in %.1fs", time.monotonic() - t0)
    return started, result

"""An outside check of the factory's OpenLineage events, with the official client we did not write.

  python verify_openlineage.py <events.jsonl>

Every event is rebuilt with openlineage-python's model of the spec (openlineage.client.event_v2 and
the facet classes generated from the official JSON schemas): an unknown or missing field of the event
or of a standard facet is a TypeError, the model's own validators check the run id (UUID), the event
time (ISO 8601 with a time) and the URIs, and each standard facet's _schemaURL must be the one the
client names for it. The rebuilt event, serialised by the client (Serde), must equal what the factory
wrote, custom facets and the client's empty defaults aside. Custom facets (factory_*) must carry _producer and _schemaURL and no other
_-prefixed key, as the spec's CustomFacet requires, and match their definition in
docs/openlineage-facets.json (ours, so only a consistency check). Prints one JSON line per event
{"eventType", "job", "runId", "standard", "custom"}; exits 1 naming the first event that fails.
"""
import json
import os
import sys

import jsonschema

from openlineage.client import event_v2
from openlineage.client.generated import (
    column_lineage_dataset,
    datasource_dataset,
    error_message_run,
    job_type_job,
    ownership_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.serde import Serde


# The factory's own facets are described (by us) in docs/openlineage-facets.json: checked too.
with open(os.path.join(os.path.dirname(__file__), "..", "..", "docs", "openlineage-facets.json"), encoding="utf-8") as _fh:
    CUSTOM = json.load(_fh)
CUSTOM_PREFIX = CUSTOM["$id"] + "#/$defs/"


def body(facet):
    return {k: v for k, v in facet.items() if k not in ("_producer", "_schemaURL")}


def input_field(f):
    f = dict(f)
    f["transformations"] = [column_lineage_dataset.Transformation(**t) for t in f.get("transformations", [])]
    return column_lineage_dataset.InputField(**f)


def build_schema(f):
    return schema_dataset.SchemaDatasetFacet(fields=[schema_dataset.SchemaDatasetFacetFields(**x) for x in f["fields"]])


def build_ownership(f):
    return ownership_dataset.OwnershipDatasetFacet(owners=[ownership_dataset.Owner(**o) for o in f["owners"]])


def build_column_lineage(f):
    fields = {
        name: column_lineage_dataset.Fields(**{**v, "inputFields": [input_field(i) for i in v["inputFields"]]})
        for name, v in f["fields"].items()
    }
    return column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields, dataset=[input_field(i) for i in f.get("dataset", [])])


def build_parent(f):
    return parent_run.ParentRunFacet(run=parent_run.Run(**f["run"]), job=parent_run.Job(**f["job"]))


DATASET_FACETS = {
    "schema": build_schema,
    "dataSource": lambda f: datasource_dataset.DatasourceDatasetFacet(**f),
    "ownership": build_ownership,
    "columnLineage": build_column_lineage,
}
RUN_FACETS = {
    "parent": build_parent,
    "errorMessage": lambda f: error_message_run.ErrorMessageRunFacet(**f),
}
JOB_FACETS = {"jobType": lambda f: job_type_job.JobTypeJobFacet(**f)}


def split_facets(facets, builders, counts):
    standard, custom = {}, {}
    for name, facet in (facets or {}).items():
        if name in builders:
            built = builders[name](body(facet))
            if facet.get("_schemaURL") != built._get_schema():
                raise ValueError(f"facet {name}: _schemaURL {facet.get('_schemaURL')!r} is not the client's {built._get_schema()!r}")
            built._producer = facet["_producer"]
            standard[name] = built
            counts["standard"].add(name)
        else:
            if not name.startswith("factory_"):
                raise ValueError(f"facet {name!r} is neither a standard facet this check knows nor a factory_ one")
            if not isinstance(facet.get("_producer"), str) or not isinstance(facet.get("_schemaURL"), str):
                raise ValueError(f"custom facet {name} lacks _producer or _schemaURL")
            extra = [k for k in facet if k.startswith("_") and k not in ("_producer", "_schemaURL")]
            if extra:
                raise ValueError(f"custom facet {name} has fields starting with _: {extra}")
            url = facet["_schemaURL"]
            if not url.startswith(CUSTOM_PREFIX):
                raise ValueError(f"custom facet {name}: _schemaURL {url!r} is not one of docs/openlineage-facets.json")
            definition = CUSTOM["$defs"].get(url[len(CUSTOM_PREFIX):])
            if definition is None:
                raise ValueError(f"custom facet {name}: no definition for {url!r}")
            jsonschema.validate(facet, definition, format_checker=jsonschema.FormatChecker())
            custom[name] = facet
            counts["custom"].add(name)
    return standard, custom


def check(event):
    counts = {"standard": set(), "custom": set()}
    run_std, _ = split_facets(event["run"].get("facets"), RUN_FACETS, counts)
    job_std, _ = split_facets(event["job"].get("facets"), JOB_FACETS, counts)

    def datasets(items, cls):
        out = []
        for d in items:
            std, _ = split_facets(d.get("facets"), DATASET_FACETS, counts)
            out.append(cls(namespace=d["namespace"], name=d["name"], facets=std))
        return out

    rebuilt = event_v2.RunEvent(
        eventType=event_v2.RunState(event["eventType"]),
        eventTime=event["eventTime"],
        producer=event["producer"],
        run=event_v2.Run(runId=event["run"]["runId"], facets=run_std),
        job=event_v2.Job(namespace=event["job"]["namespace"], name=event["job"]["name"], facets=job_std),
        inputs=datasets(event.get("inputs", []), event_v2.InputDataset),
        outputs=datasets(event.get("outputs", []), event_v2.OutputDataset),
    )
    if rebuilt.schemaURL != event.get("schemaURL"):
        raise ValueError(f"schemaURL {event.get('schemaURL')!r} is not the client's {rebuilt.schemaURL!r}")
    allowed = {"eventType", "eventTime", "producer", "schemaURL", "run", "job", "inputs", "outputs"}
    if set(event) - allowed:
        raise ValueError(f"unknown event fields {sorted(set(event) - allowed)}")

    def strip_custom(e):
        e = json.loads(json.dumps(e))
        for holder in [e["run"], e["job"], *e.get("inputs", []), *e.get("outputs", [])]:
            facets = holder.get("facets")
            if facets is not None:
                holder["facets"] = {k: v for k, v in facets.items() if not k.startswith("factory_")}
        return e

    def prune(v):
        # The client writes its defaults (empty lists and maps); the factory leaves them out.
        if isinstance(v, dict):
            return {k: prune(x) for k, x in v.items() if x not in ([], {}, None)}
        if isinstance(v, list):
            return [prune(x) for x in v]
        return v

    ours = prune(strip_custom(event))
    theirs = prune(Serde.to_dict(rebuilt))
    if json.dumps(ours, sort_keys=True) != json.dumps(theirs, sort_keys=True):
        raise ValueError(f"the client serialises the event differently:\n ours   {json.dumps(ours, sort_keys=True)[:1500]}\n theirs {json.dumps(theirs, sort_keys=True)[:1500]}")
    return {
        "eventType": event["eventType"],
        "job": event["job"]["name"],
        "runId": event["run"]["runId"],
        "standard": sorted(counts["standard"]),
        "custom": sorted(counts["custom"]),
    }


def main():
    with open(sys.argv[1], encoding="utf-8") as fh:
        lines = [line for line in fh if line.strip()]
    for n, line in enumerate(lines, 1):
        try:
            print(json.dumps(check(json.loads(line))))
        except Exception as err:  # noqa: BLE001 - any failure names the event
            print(f"event {n}: {type(err).__name__}: {err}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()

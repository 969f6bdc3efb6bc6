"""Every TracingPolicy document of a directory, as a tracer.dev object, against the
CRD's openAPIV3Schema (jsonschema, which kubernetes-validate brings); and a broken one,
which the schema must reject. Exits 1 on any failure, saying which."""

import glob
import sys

import jsonschema
import yaml

crds, policies = sys.argv[1], sys.argv[2]
schemas = {}
for crd in yaml.safe_load_all(open(crds)):
    if crd:
        schemas[crd["spec"]["names"]["kind"]] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
schema = schemas["TracingPolicy"]
validator = jsonschema.Draft7Validator(schema)

failed = False
count = 0
for path in sorted(glob.glob(f"{policies}/*.yaml")):
    for doc in yaml.safe_load_all(open(path)):
        if not doc:
            continue
        obj = {"apiVersion": "tracer.dev/v1alpha1", "kind": "TracingPolicy", "metadata": doc["metadata"], "spec": doc["spec"]}
        errors = list(validator.iter_errors(obj))
        for e in errors:
            print(f"{path}: {doc['metadata']['name']}: {'.'.join(map(str, e.path))}: {e.message}")
            failed = True
        count += 1

broken = {
    "apiVersion": "tracer.dev/v1alpha1",
    "kind": "TracingPolicy",
    "metadata": {"name": "broken"},
    "spec": {"kprobes": [{"call": "tcp_connect", "args": [{"index": "zero", "type": "sock"}]}]},
}
if not list(validator.iter_errors(broken)):
    print("the CRD schema accepted a policy whose argument index is not a number")
    failed = True

if failed:
    sys.exit(1)
print(f"policies against the TracingPolicy CRD: {count} documents valid, a broken one refused")

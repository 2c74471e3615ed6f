#!/usr/bin/env python3
"""Lists the facts about the Go API types that their protobuf form does not carry.

Reads the Go sources of k8s.io/api, k8s.io/apimachinery, k8s.io/apiextensions-apiserver and
k8s.io/kube-aggregator (checkouts at the Kubernetes version k8s-pb was generated from) and
prints one line per field, `<proto message> <proto field name> <fact>`, where `fact` is

- `pointer`: a scalar field that is a Go pointer. Go's protobuf marshaller writes it only when
  set, so a zero on the wire was set on purpose and Go's JSON writes it too;
- `always`: a scalar field without `omitempty`, which Go's JSON writes whatever its value;
- `inline`: an embedded struct (`json:",inline"`) that protobuf carries as one message field and
  JSON as the embedded struct's own fields, flattened into the parent;
- `json=NAME`: the JSON name, where it has an acronym (`podIPs`) or other spelling that the
  generator could not recover from prost's snake_case name alone.

Every other scalar field is a non-pointer `omitempty` field, which Go's protobuf marshaller
writes even when zero but Go's JSON leaves out, so the decoder drops its zero value.

    go_fields.py API APIMACHINERY APIEXTENSIONS KUBE_AGGREGATOR > go_fields.txt

The output is checked in next to this script (`go_fields.txt`, made from the v0.35.6 tags of
the four repositories, as k8s-pb 0.9 is Kubernetes 1.35) and read by the generator of
`schema.rs` (see `generate.rs`); regenerate both when k8s-pb moves to a new Kubernetes version.
The generator fails if a line names a field k8s-pb does not have.
"""

import os
import re
import sys

SCALARS = {"string", "bool", "int", "int32", "int64", "uint32", "uint64", "float32", "float64",
           "[]byte", "byte"}
TYPE_DECL = re.compile(r"^type\s+(\w+)\s+(\S+)\s*(//.*)?$")
STRUCT_START = re.compile(r"^type\s+(\w+)\s+struct\s*{")
FIELD = re.compile(r"^\s*(\w+)\s+(\S+)\s+`([^`]*)`")
EMBEDDED = re.compile(r"^\s*(\*?([\w.]+\.)?(\w+))()\s+`([^`]*)`")
TAG = re.compile(r'(\w+):"([^"]*)"')


def packages(roots):
    """Yields (proto package, directory) for every directory holding a generated.proto."""
    for root in roots:
        for dirpath, _, files in os.walk(root):
            if "generated.proto" not in files:
                continue
            with open(os.path.join(dirpath, "generated.proto")) as f:
                package = re.search(r"^package\s+([\w.\-]+);", f.read(), re.M).group(1)
            package = package.removeprefix("k8s.io.").replace("-", "_")
            yield package, dirpath


def go_files(directory):
    for name in sorted(os.listdir(directory)):
        if name.endswith(".go") and not name.endswith("_test.go") and not name.startswith("zz_"):
            with open(os.path.join(directory, name)) as f:
                yield f.read().splitlines()


def main(roots):
    named_scalars = {"UID"}  # types.UID
    dirs = list(packages(roots))
    for _, directory in dirs:
        for lines in go_files(directory):
            for line in lines:
                m = TYPE_DECL.match(line)
                if m and m.group(2).lstrip("*") in SCALARS:
                    named_scalars.add(m.group(1))
    out = []
    for package, directory in dirs:
        for lines in go_files(directory):
            struct = None
            for line in lines:
                m = STRUCT_START.match(line)
                if m:
                    struct = m.group(1)
                    continue
                if struct is None:
                    continue
                if line.startswith("}"):
                    struct = None
                    continue
                m = FIELD.match(line)
                if m:
                    go_name, go_type, tag = m.group(1), m.group(2), m.group(3)
                else:
                    m = EMBEDDED.match(line)
                    if not m:
                        continue
                    go_name, go_type, tag = m.group(3), m.group(1), m.group(5)
                tags = dict(TAG.findall(tag))
                if "protobuf" not in tags or "json" not in tags:
                    continue
                json_name, *options = tags["json"].split(",")
                proto = dict(o.split("=", 1) for o in tags["protobuf"].split(",") if "=" in o)
                proto_name = proto.get("name") or go_name[0].lower() + go_name[1:]
                if not json_name and "inline" in options:
                    out.append(f"{package}.{struct} {proto_name} inline")
                    continue
                if not json_name or json_name == "-":
                    continue
                if re.search(r"[A-Z]{2}|[^A-Za-z0-9]", json_name) or json_name != proto_name:
                    out.append(f"{package}.{struct} {proto_name} json={json_name}")
                pointer = go_type.startswith("*")
                base = go_type.lstrip("*").split(".")[-1]
                if go_type.lstrip("*") != "[]byte" and (base.startswith("[]") or base.startswith("map[")):
                    continue
                if base not in SCALARS and base not in named_scalars and go_type.lstrip("*") != "[]byte":
                    continue
                if pointer:
                    out.append(f"{package}.{struct} {proto_name} pointer")
                elif "omitempty" not in options:
                    out.append(f"{package}.{struct} {proto_name} always")
    print("# Generated by go_fields.py from the Go API types; see its docstring.")
    for line in sorted(set(out)):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])

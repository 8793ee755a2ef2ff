#!/usr/bin/env python3
"""Generates theia_client.v1 from ../../proto with grpcio-tools.

Run it with a Python that has grpcio-tools installed, before building the
package: `python generate.py`. The generated modules are not kept in git, so
they can never drift from proto/.
"""

import pathlib
import re
import shutil
import sys

from grpc_tools import protoc

HERE = pathlib.Path(__file__).resolve().parent
PROTO = HERE.parent.parent / "proto"
OUT = HERE / "src" / "theia_client" / "v1"


def main() -> int:
    staging = HERE / "build" / "generated"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    protos = sorted(str(p.relative_to(PROTO)) for p in (PROTO / "theia" / "v1").glob("*.proto"))
    if not protos:
        print(f"no .proto files under {PROTO}", file=sys.stderr)
        return 1
    well_known = pathlib.Path(protoc.__file__).parent / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"-I{well_known}",
        f"--python_out={staging}",
        f"--pyi_out={staging}",
        f"--grpc_python_out={staging}",
        *protos,
    ]
    if protoc.main(args) != 0:
        print("protoc failed", file=sys.stderr)
        return 1
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    (OUT / "__init__.py").write_text('"""Generated from proto/theia/v1 by generate.py; do not edit."""\n')
    # protoc writes `from theia.v1 import x_pb2`; the modules live in
    # theia_client.v1, so that installing the SDK adds no top-level `theia`.
    for path in sorted((staging / "theia" / "v1").iterdir()):
        text = path.read_text()
        text = re.sub(r"^from theia\.v1 import", "from theia_client.v1 import", text, flags=re.M)
        (OUT / path.name).write_text(text)
    print(f"generated {len(protos)} protos into {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

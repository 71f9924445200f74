"""A case system's first call, made the way gRPC's own Python library makes it by default.

Usage: stock_client.py PROTO_DIR AGENCY_SOCKET ADMIN_SOCKET

Compiles PROTO_DIR's tatmx/v1 protos into a temporary directory with grpcio-tools' protoc, then
opens `grpc.insecure_channel("unix:" + path)` on each socket with no channel options at all (no
authority override), lists the Agency inbox and the Admin API's peers, and prints one line per
call, `agency inbox OK items=N` and `admin peers OK peers=N`, or `... FAILED <code> <details>`.
Exits non-zero when a call failed.
"""

import importlib
import os
import sys
import tempfile

import grpc
import grpc_tools
from grpc_tools import protoc


def compile_stubs(proto_dir, out_dir):
    # grpcio-tools ships google/protobuf/*.proto beside its protoc.
    google = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    protos = [
        os.path.join("tatmx", "v1", name)
        for name in ("agency.proto", "admin.proto", "federation.proto", "referral.proto")
    ] + [os.path.join("tatmx", "v2", "federation.proto")]
    args = ["protoc", "-I" + proto_dir, "-I" + google, "--python_out=" + out_dir,
            "--grpc_python_out=" + out_dir] + protos
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed on " + proto_dir)
    sys.path.insert(0, out_dir)


def call(label, fn):
    try:
        return label + " OK " + fn()
    except grpc.RpcError as e:
        return label + " FAILED " + e.code().name + " " + repr(e.details())


def main():
    proto_dir, agency_socket, admin_socket = sys.argv[1:4]
    with tempfile.TemporaryDirectory() as out_dir:
        compile_stubs(proto_dir, out_dir)
        agency_pb2 = importlib.import_module("tatmx.v1.agency_pb2")
        agency_grpc = importlib.import_module("tatmx.v1.agency_pb2_grpc")
        admin_pb2 = importlib.import_module("tatmx.v1.admin_pb2")
        admin_grpc = importlib.import_module("tatmx.v1.admin_pb2_grpc")

        lines = []
        with grpc.insecure_channel("unix:" + agency_socket) as channel:
            agency = agency_grpc.AgencyStub(channel)
            lines.append(call("agency inbox", lambda: "items=%d" % len(
                agency.ListInbox(agency_pb2.ListInboxRequest(), timeout=20).items)))
        with grpc.insecure_channel("unix:" + admin_socket) as channel:
            admin = admin_grpc.AdminStub(channel)
            lines.append(call("admin peers", lambda: "peers=%d" % len(
                admin.ListPeers(admin_pb2.ListPeersRequest(), timeout=20).peers)))
    for line in lines:
        print(line, flush=True)
    sys.exit(0 if all(" OK " in line for line in lines) else 1)


if __name__ == "__main__":
    main()

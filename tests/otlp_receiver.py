#!/usr/bin/env python3
"""A real OTLP receiver for netwatch's tests, built on the official protobuf
definitions (PyPI opentelemetry-proto) and grpcio: OTLP/gRPC or OTLP/HTTP
(protobuf bodies, gzip), optionally TLS (and client certificates), optionally
requiring a bearer token.

Every log record and metrics export received is appended to --out as one
JSON line (a record's "attributes" are its own and its resource's owner
attributes, "record_attributes" its own only); a request refused for its token adds {"type": "rejected"}.
Prints "ready PORT" once listening.
"""
import argparse, gzip, json, ssl, sys, threading
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc

LOCK = threading.Lock()


def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


class Sink:
    def __init__(self, path, token):
        self.path, self.token = path, token

    def write(self, lines):
        with LOCK, open(self.path, "a") as f:
            for line in lines:
                f.write(json.dumps(line, sort_keys=True) + "\n")

    def authorized(self, header):
        return self.token is None or header == "Bearer " + self.token

    def logs(self, req):
        out = []
        for rl in req.resource_logs:
            resource = attrs(rl.resource.attributes)
            # What the resource says of the event's owner (process, workload),
            # apart from who sent it (netwatch on this host).
            owner = {k: v for k, v in resource.items() if not k.startswith(("service.", "host."))}
            for sl in rl.scope_logs:
                for r in sl.log_records:
                    own = attrs(r.attributes)
                    out.append({"type": "log", "resource": resource, "scope": sl.scope.name,
                                "time_unix_nano": r.time_unix_nano, "severity_text": r.severity_text,
                                "severity_number": r.severity_number, "event_name": r.event_name,
                                "body": any_value(r.body), "record_attributes": own,
                                "attributes": {**owner, **own}})
        self.write(out)

    def metrics(self, req):
        ms = []
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    kind = m.WhichOneof("data")
                    points = []
                    if kind in ("sum", "gauge"):
                        for p in getattr(m, kind).data_points:
                            v = p.as_int if p.WhichOneof("value") == "as_int" else p.as_double
                            points.append({"attributes": attrs(p.attributes), "value": v})
                    elif kind == "histogram":
                        for p in m.histogram.data_points:
                            points.append({"attributes": attrs(p.attributes), "count": p.count, "sum": p.sum,
                                           "bucket_counts": list(p.bucket_counts),
                                           "explicit_bounds": list(p.explicit_bounds)})
                    ms.append({"name": m.name, "kind": kind, "points": points})
        self.write([{"type": "metrics", "metrics": ms}])


class Logs(logs_service_pb2_grpc.LogsServiceServicer):
    def __init__(self, sink):
        self.sink = sink

    def Export(self, request, context):
        if not self.sink.authorized(dict(context.invocation_metadata()).get("authorization")):
            self.sink.write([{"type": "rejected"}])
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.sink.logs(request)
        return logs_service_pb2.ExportLogsServiceResponse()


class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
    def __init__(self, sink):
        self.sink = sink

    def Export(self, request, context):
        if not self.sink.authorized(dict(context.invocation_metadata()).get("authorization")):
            self.sink.write([{"type": "rejected"}])
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "bad token")
        self.sink.metrics(request)
        return metrics_service_pb2.ExportMetricsServiceResponse()


def serve_grpc(args, sink):
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Logs(sink), server)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(sink), server)
    addr = "127.0.0.1:%d" % args.port
    if args.cert:
        pair = [(open(args.key, "rb").read(), open(args.cert, "rb").read())]
        if args.client_ca:
            creds = grpc.ssl_server_credentials(pair, root_certificates=open(args.client_ca, "rb").read(),
                                                require_client_auth=True)
        else:
            creds = grpc.ssl_server_credentials(pair)
        server.add_secure_port(addr, creds)
    else:
        server.add_insecure_port(addr)
    server.start()
    print("ready %d" % args.port, flush=True)
    server.wait_for_termination()


def serve_grpc_sink(args):
    """For the benchmark (`cargo xtask bench --only otlp:`): takes every
    request without decoding it, keeps only counts, and prints
    "sink requests N bytes M" (uncompressed) when terminated."""
    import os, signal
    stats = {"requests": 0, "bytes": 0}

    def export(request, context):
        with LOCK:
            stats["requests"] += 1
            stats["bytes"] += len(request)
        return b""  # an empty Export*ServiceResponse

    handlers = [grpc.method_handlers_generic_handler(
        "opentelemetry.proto.collector.%s.v1.%sService" % (s, s.capitalize()),
        {"Export": grpc.unary_unary_rpc_method_handler(export)}) for s in ("logs", "metrics")]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                         options=[("grpc.max_receive_message_length", 64 << 20)])
    server.add_generic_rpc_handlers(handlers)
    server.add_insecure_port("127.0.0.1:%d" % args.port)

    def done(*_):
        with LOCK:
            print("sink requests %d bytes %d" % (stats["requests"], stats["bytes"]), flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, done)
    server.start()
    print("ready %d" % args.port, flush=True)
    server.wait_for_termination()


def serve_http(args, sink):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def reply(self, code):
            self.send_response(code)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
                sink.write([{"type": "gzip"}])
            if not sink.authorized(self.headers.get("Authorization")):
                sink.write([{"type": "rejected"}])
                return self.reply(401)
            if self.path == "/v1/logs":
                req = logs_service_pb2.ExportLogsServiceRequest()
                req.ParseFromString(body)
                sink.logs(req)
            elif self.path == "/v1/metrics":
                req = metrics_service_pb2.ExportMetricsServiceRequest()
                req.ParseFromString(body)
                sink.metrics(req)
            else:
                return self.reply(404)
            self.reply(200)

    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
        if args.client_ca:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(args.client_ca)
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    print("ready %d" % args.port, flush=True)
    server.serve_forever()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--protocol", choices=["grpc", "http"], required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out")
    p.add_argument("--sink", action="store_true", help="gRPC only: count requests, decode and keep nothing")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--token")
    p.add_argument("--client-ca", help="require client certificates signed by this CA (mTLS)")
    args = p.parse_args()
    if args.sink:
        return serve_grpc_sink(args)
    sink = Sink(args.out, args.token)
    (serve_grpc if args.protocol == "grpc" else serve_http)(args, sink)


if __name__ == "__main__":
    sys.exit(main())

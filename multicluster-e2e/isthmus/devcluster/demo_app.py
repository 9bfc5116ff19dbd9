"""A demo workload for the rig: answers every HTTP GET with which cluster served it.

``python -m isthmus.devcluster.demo_app --cluster east --service users --listen 10.101.0.20:8080``
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cluster", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--listen", required=True, help="host:port")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    body = json.dumps({"cluster": args.cluster, "service": args.service}).encode() + b"\n"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *fmt_args: object) -> None:
            return  # quiet: the rig reads its own logs

    ThreadingHTTPServer((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
